#[net::connect(oneway)]
fn log(line: String) -> usize {
    line.len()
}

fn main() {}
