use std::rc::Rc;

async fn yield_now() {}

#[net::connect]
async fn count(n: u64) -> u64 {
    let shared = Rc::new(n);
    yield_now().await;
    *shared
}

fn main() {}
