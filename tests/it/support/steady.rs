//! The checks of a well-behaved client that keeps calling while a test attacks or loads
//! the server: each call answered with its own number, all over one connection.

/// Checks one answer of the well-behaved client's call `i`: the number it sent back, and
/// the connection it came from (the server's view of the client's address), which must
/// stay the one of the first answer.
#[derive(Default)]
pub struct Steady {
    first_from: Option<String>,
}

impl Steady {
    /// `Err` says what went wrong, for the test's failure message.
    pub fn check(&mut self, i: u64, got: u64, from: Option<String>) -> Result<(), String> {
        if got != i {
            return Err(format!("well-behaved call {i} was answered {got}"));
        }
        let Some(from) = from else {
            return Ok(());
        };
        match &self.first_from {
            None => self.first_from = Some(from),
            Some(first) if *first != from => {
                return Err(format!(
                    "the well-behaved client's connection changed: {first} then {from}"
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }
}
