//! The `cloudimg` command: a thin dispatcher over `cloudimg-disk`.

fn main() {
    println!("cloudimg");
}
