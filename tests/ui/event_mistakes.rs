#[net::event]
fn unnamed() -> u8 {
    0
}

#[net::event("", color = 1)]
async fn empty(&self) -> u8 {
    0
}

#[net::event("opaque")]
fn opaque() -> impl serde::Serialize {
    0
}

fn main() {}
