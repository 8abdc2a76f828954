include!("../../build/link_mlx.rs");

fn main() {
    link_mlx();
}
