//! Prints what the kernel reads from a DTB: `cargo run -p kernel --example dtbinfo FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: dtbinfo FILE.dtb");
    let blob = std::fs::read(&path).expect("reading the DTB");
    let fdt = fdt::Fdt::new(&blob).expect("a valid DTB");
    println!("{:#?}", kernel::platform::Platform::from_fdt(&fdt));
    println!("{:#?}", mm::memmap::MemoryMap::from_fdt(&fdt));
}
