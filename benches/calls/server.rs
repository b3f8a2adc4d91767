//! The serving side: a plain `net` peer, a secured one (NET_SECRET) and the raw echo
//! server, on a runtime of their own in this process, or in a second process.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use tokio::runtime::Runtime;

use crate::measure::{run_on, runtime};
use crate::{config, raw, secured};

/// The serving side's addresses, and what keeps it running.
pub struct Server {
    pub net: SocketAddr,
    pub secured: SocketAddr,
    pub echo: SocketAddr,
    /// The in-process server's runtime and peers, kept until the end.
    local: Option<(Runtime, [net::Peer; 2])>,
    /// The second process; it ends when its stdin closes.
    child: Option<Child>,
}

impl Server {
    pub fn start(processes: bool) -> Server {
        if !processes {
            let rt = runtime("bench-server", 1);
            let echo = run_on(&rt, raw::spawn_echo_server()).expect("binding the echo server");
            let [plain, secure] = peers(&rt);
            return Server {
                net: plain.addr(),
                secured: secure.addr(),
                echo,
                local: Some((rt, [plain, secure])),
                child: None,
            };
        }
        let exe = std::env::current_exe().expect("this program's path");
        let mut child = Command::new(exe)
            .arg("--serve")
            .env("NET_LOOPBACK", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the server process");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the server's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's first line");
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["ready", net, secured, echo] = words[..] else {
            panic!("the server process said {line:?}");
        };
        Server {
            net: net.parse().expect("the server's net address"),
            secured: secured.parse().expect("the server's secured address"),
            echo: echo.parse().expect("the server's echo address"),
            local: None,
            child: Some(child),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((rt, peers)) = self.local.take() {
            rt.block_on(async {
                for peer in peers {
                    peer.shutdown().await;
                }
            });
        }
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// The plain and the secured server peer, on `rt`.
fn peers(rt: &Runtime) -> [net::Peer; 2] {
    [config(), secured(config())]
        .map(|config| net::Peer::start_on(config, rt.handle().clone()).expect("server peer"))
}

/// `--serve`: the server process of `--processes`. Prints `ready NET SECURED ECHO` and
/// serves until its stdin closes.
pub fn serve() {
    let rt = Runtime::new().expect("building a tokio runtime");
    let echo = rt
        .block_on(raw::spawn_echo_server())
        .expect("binding the echo server");
    let [plain, secure] = peers(&rt);
    println!("ready {} {} {echo}", plain.addr(), secure.addr());
    let _ = std::io::stdout().flush();
    let mut rest = String::new();
    while std::io::stdin().read_line(&mut rest).is_ok_and(|n| n > 0) {}
    rt.block_on(async {
        plain.shutdown().await;
        secure.shutdown().await;
    });
}
