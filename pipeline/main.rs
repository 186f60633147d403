fn main() {
    println!("relcap");
}
