#[net::connect("", timeout = 5, oneway, oneway)]
fn ping() {}

fn main() {}
