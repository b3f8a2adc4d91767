//! What the integration tests share: waiting with a deadline ([`eventually`]), loopback
//! ports, in-process peers, example and helper processes, the app-net venv, `net-test-peer`
//! processes, and LANs made of network namespaces.

pub mod appnet;
pub mod netns;
pub mod peer;
pub mod ports;
pub mod process;
pub mod steady;
pub mod test_peer;
pub mod wait;

pub use appnet::{appnet_python, python_dir};
pub use peer::{loopback, runtime, wait_ready};
pub use ports::{dead_addr, free_ports, free_range};
pub use process::{confined, example, ok, run, Process, STDERR};
pub use steady::Steady;
pub use wait::{eventually, eventually_blocking};
