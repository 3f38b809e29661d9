//! A round-robin TCP balancer for tests of a cluster: each accepted connection goes to the
//! next node, as a plain balancer without sticky sessions would send it. A node that does
//! not accept is skipped (it died).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::net::{TcpListener, TcpStream};

/// Starts the balancer in front of `nodes`; its address.
pub async fn round_robin(nodes: Vec<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the balancer");
    let addr = listener.local_addr().expect("balancer address");
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let nodes = nodes.clone();
            let next = next.clone();
            tokio::spawn(async move {
                for _ in 0..nodes.len() {
                    let node = nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()];
                    if let Ok(mut upstream) = TcpStream::connect(node).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        return;
                    }
                }
            });
        }
    });
    addr
}
