struct Point {
    x: i64,
}

#[net::connect]
fn origin() -> Point {
    Point { x: 0 }
}

fn main() {}
