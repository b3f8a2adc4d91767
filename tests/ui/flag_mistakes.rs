#[net::flag("")]
async fn on_empty(event: &net::FlagEvent) {
    let _ = event;
}

#[net::flag("BUSY")]
fn on_busy(event: &net::FlagEvent, extra: u8) {
    let _ = (event, extra);
}

fn main() {}
