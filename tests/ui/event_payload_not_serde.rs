struct NotSerde;

#[net::event("opaque")]
fn opaque(x: u8) -> NotSerde {
    let _ = x;
    NotSerde
}

fn main() {}
