struct Counter;

impl Counter {
    #[net::connect]
    fn get(&self) -> u64 {
        0
    }
}

fn main() {}
