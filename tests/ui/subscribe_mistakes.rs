#[net::subscribe(groups = [], hubs_only = true, oneway, peers = [1])]
fn on_nothing(text: &str) {
    let _ = text;
}

#[net::subscribe("a", hubs_only, hubs_only, groups = "g", groups = ["h"], on_host = 1)]
fn on_twice() {}

fn main() {}
