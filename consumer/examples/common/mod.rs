//! Shared by the benchmark examples (`bench_replay`, `bench_worker`): a topic filled with a
//! known number of fixed-size values, reused across runs.

use cairn_consumer::{Client, NewMessage, NewTopic, Producer};

/// Makes `topic` (one partition) hold at least `count` values of `value_bytes` bytes,
/// producing only what is missing (1,000 per request). Returns whether anything was produced.
pub async fn fill_topic(client: &Client, topic: &str, count: u64, value_bytes: usize) -> cairn_consumer::Result<bool> {
    let end = match client.describe_topic(topic).await {
        Ok(t) => t.partitions[0].end_offset,
        Err(_) => {
            client.create_topic(&NewTopic::new(topic)).await?;
            0
        }
    };
    if end >= count {
        return Ok(false);
    }
    let producer = Producer::new(client.clone());
    let value = vec![b'x'; value_bytes];
    for chunk in (end..count).collect::<Vec<_>>().chunks(1000) {
        let msgs = chunk.iter().map(|_| NewMessage::new(value.clone()).to_partition(0)).collect();
        producer.send_batch(topic, msgs).await?;
    }
    Ok(true)
}
