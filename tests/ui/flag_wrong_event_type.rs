#[net::flag("BUSY")]
fn on_busy(event: String) {
    let _ = event;
}

fn main() {}
