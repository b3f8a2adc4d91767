#[net::connect]
fn relay(from: net::Caller, to: net::Caller, message: String) {
    let _ = (from, to, message);
}

fn main() {}
