#[net::flag]
fn on_busy(event: &net::FlagEvent) {
    let _ = event;
}

fn main() {}
