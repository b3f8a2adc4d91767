struct Point {
    x: i64,
}

#[net::connect]
fn norm(point: Point) -> i64 {
    point.x.abs()
}

fn main() {}
