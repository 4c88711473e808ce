//! A byte relay: every connection is copied to the upstream and back, with no HTTP/2, no
//! authentication and no routing.
//!
//! Put in front of a server in the unloaded rows, it shows what one extra process on the
//! path costs on this machine before a proxy does any work of its own: the floor under the
//! gateway's added latency, measured in the same run and in turn with it. On a VM whose idle
//! vCPUs halt, that floor is the extra wake-ups, not the copying.

use std::{future::Future, net::SocketAddr};

use clap::Parser;
use tokio::net::{TcpListener, TcpStream};

/// Each direction's buffer: larger than a List page (8.5 KB), so a response is copied in
/// one read and one write, as the gateway forwards it.
const BUFFER: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(name = "relay")]
pub struct Config {
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where every accepted connection is relayed to.
    #[arg(long)]
    pub upstream: SocketAddr,
}

/// Relays connections from `listener` to `upstream` until `shutdown` resolves.
pub async fn serve(
    upstream: SocketAddr,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (client, _) = accepted?;
                tokio::spawn(relay(client, upstream));
            }
        }
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    // As tonic's connections are: no Nagle delay on small frames.
    if client.set_nodelay(true).is_err() || server.set_nodelay(true).is_err() {
        return;
    }
    // A reset on either side ends the relay; there is nothing to report it to.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUFFER, BUFFER).await;
}
