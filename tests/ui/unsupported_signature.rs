#[net::connect("Tag")]
const unsafe extern "C" fn everything(
    items: impl Iterator<Item = u8>,
    text: Box<&'static str>,
) -> &'static str {
    ""
}

fn main() {}
