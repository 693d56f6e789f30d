//! Sends one encrypted measurement from a Rust app: the README's "Sending
//! from your app" example, compiled by `cargo test --workspace`.
//!
//! ```sh
//! cargo run -p hetally-client --example send -- http://127.0.0.1:8080 TASK_ID 1
//! ```

use hetally_client::{parse_server_url, Client};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, server, task_id, value] = &args[..] else {
        anyhow::bail!("usage: send SERVER TASK_ID VALUE");
    };
    // The task id comes from the collector, never from the server: the
    // client checks that the task the server serves hashes to it.
    let client = Client::connect(parse_server_url(server)?, task_id.parse()?).await?;
    let values = client.task().parse_value(value)?; // "1", a bucket, "3,0,7"
    let report_id = client.send(&values).await?; // encrypt, prove, upload, retry
    println!("sent report {report_id}");
    Ok(())
}
