//! A thumbnail worker: leases jobs from the `uploads` topic in group `thumbnailer`, runs up
//! to 8 at once, retries transient failures with backoff and dead-letters bad input
//! (`uploads.dlq`, after `max_deliveries` attempts or at once for a permanent error).
//!
//! Each job is JSON `{"image": "path.png", "width": 128}`. Run several copies: every job
//! is handled by one of them; kill one mid-job and its job goes to another after the lease.
//! Ctrl-C finishes the jobs in flight (or releases them) and exits.
//!
//! ```text
//! cargo run -p cairn-consumer --example worker -- [http://127.0.0.1:7420]
//! ```

use std::time::Duration;

use cairn_consumer::{
    CancellationToken, Client, Delivery, GroupConfig, GroupConsumer, GroupConsumerConfig, HandlerError, NewTopic,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Job {
    image: String,
    width: u32,
}

/// Makes one thumbnail. Stands in for real work (decode, resize, upload).
async fn thumbnail(d: Delivery) -> Result<(), HandlerError> {
    let job: Job = d.message.json().map_err(HandlerError::permanent)?;
    if !job.image.ends_with(".png") {
        return Err(HandlerError::permanent(format!("{} is not a PNG", job.image)));
    }
    if job.image.contains("flaky") && d.delivery < 3 {
        return Err(HandlerError::retry("image store timed out"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("thumbnail of {} at {}px done (delivery {})", job.image, job.width, d.delivery);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let client = Client::new(url)?;
    match client.create_topic(&NewTopic::new("uploads")).await {
        Ok(_) | Err(cairn_consumer::Error::Api { status: 409, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    client.configure_group("thumbnailer", &GroupConfig { max_deliveries: 5, ..Default::default() }).await?;

    let config = GroupConsumerConfig {
        concurrency: 8,
        ack_timeout: Duration::from_secs(30),
        consumer: Some(format!("worker-{}", std::process::id())),
        ..GroupConsumerConfig::new("thumbnailer", "uploads")
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        println!("shutting down: finishing jobs in flight");
        on_signal.cancel();
    });
    let stats = GroupConsumer::with_config(client, config).run(thumbnail, shutdown).await?;
    println!("done: {stats:?}");
    Ok(())
}
