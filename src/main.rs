fn main() {
    let mut failed = false;
    for a in std::env::args().skip(1) {
        match wallflower_nvr::mp4::probe_file(std::path::Path::new(&a)) {
            Ok(p) => println!("{a} {p:?}"),
            Err(e) => { failed = true; println!("{a} ERR {e}") }
        }
    }
    std::process::exit(failed as i32);
}
