//! Support code shared by the workspace's examples, tests and benchmarks (the root
//! package is unpublished; the library is `net/`).
