//! What an idle session costs a server in heap, measured with dhat.
//!
//! Opens N sessions to one server endpoint in virtual time (sans-IO, no
//! sockets), each carrying one request, one reply and one keepalive, lets
//! them idle long enough for their keys to be put away, and prints the
//! server's heap per session: everything the server endpoint holds, less
//! what it held before the first session. Run it in release:
//!
//! ```text
//! cargo run --release -p udpchat-bench --example session_heap -- 2000
//! ```
//!
//! `dhat-heap.json` (in the working directory) then shows by call site
//! what is held at the end (`dh_view.html` from the dhat crate reads it);
//! the server endpoint is still alive then, the clients are gone.

#[path = "common/world.rs"]
mod world;

use world::World;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().build();
    let n: u32 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("a number of sessions"))
        .unwrap_or(2000);
    let mut world = World::new();
    let before = dhat::HeapStats::get().curr_bytes;
    world.open_idle_sessions(n);
    let opened = world.server.stats().sessions_opened;
    drop(std::mem::take(&mut world.clients));
    let held = dhat::HeapStats::get().curr_bytes - before;
    println!(
        "{n} sessions ({opened} opened at the server): {:.0} bytes of server heap per session",
        held as f64 / f64::from(n)
    );
    // Held past the profiler's end, so that its file shows the sessions.
    std::mem::forget(world);
}
