/// Not a function.
#[net::connect]
struct Multiply {
    a: i64,
    b: i64,
}

fn main() {}
