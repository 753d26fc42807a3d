fn main() {
    for p in std::env::args().skip(1) {
        let f = std::fs::File::open(&p).unwrap();
        match cloudimg_disk::formats::vmdk::verify(&f) {
            Ok(r) => println!("{p}: {}", serde_json::to_string_pretty(&r).unwrap()),
            Err(e) => println!("{p}: ERROR {e}"),
        }
    }
}
