//! One consumer thread, one `crossbeam_channel::select!` loop, three sources:
//!
//! 1. a [`Broadcaster`] channel of typed messages (`Alert`s, no serialisation at all);
//! 2. a [`PubSub`] client backed by a channel ([`PubSub::register_channel`]), whose items
//!    are binary Push frames, decoded with [`fanout::transport::decode`];
//! 3. a shutdown signal: a plain crossbeam channel the main thread drops when it is done
//!    (a disconnected receiver is always ready in `select!`), plus an idle timeout made
//!    with `crossbeam_channel::after`.
//!
//! This is the Rust form of dream's `channel_to_selector`: a fanout channel is an ordinary
//! crossbeam receiver, so it sits in the same `select!` as everything else a thread
//! waits on.
//!
//! ```text
//! cargo run --example select_loop
//! ```

use std::thread;
use std::time::Duration;

use crossbeam_channel::{after, bounded, select};
use fanout::transport::{decode, RawPayload};
use fanout::{Broadcaster, PubSub};

/// A typed message for the broadcaster face.
#[derive(Debug, Clone)]
struct Alert {
    level: &'static str,
    text: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Source 1: a typed broadcaster; this consumer is one of its channels.
    let alerts = Broadcaster::<Alert>::start()?;
    let alert_channel = alerts.subscribe()?;

    // Source 2: topic pub/sub; this consumer is client `me`, backed by a channel of frames.
    let pubsub = PubSub::<str>::new()?;
    let me = pubsub.generate_client_id();
    let frames = pubsub.register_channel(me)?;
    pubsub.subscribe(me, "chat/lobby")?;
    pubsub.subscribe(me, "prices/EURUSD")?;

    // Source 3: shutdown. Nothing is ever sent; dropping `stop` disconnects `stopped`.
    let (stop, stopped) = bounded::<()>(0);

    let consumer = thread::spawn(move || {
        let mut handled = 0;
        loop {
            // Re-armed every iteration: fires if nothing at all arrives for 2 seconds.
            let idle = after(Duration::from_secs(2));
            select! {
                recv(alert_channel.receiver()) -> alert => match alert {
                    Ok(alert) => show_alert(&alert),
                    Err(_) => {
                        // A closed receiver is always ready: stop selecting on it.
                        println!("alert channel closed: stopping after {handled} messages");
                        return handled;
                    }
                },
                recv(frames.receiver()) -> frame => match frame {
                    Ok(frame) => show_frame(&frame),
                    Err(_) => {
                        println!("pubsub channel closed: stopping after {handled} messages");
                        return handled;
                    }
                },
                recv(stopped) -> _ => {
                    // `select!` picks among ready arms at random, so the stop signal can
                    // win over queued items: drain them before leaving.
                    for alert in alert_channel.try_iter() {
                        show_alert(&alert);
                        handled += 1;
                    }
                    for frame in frames.try_iter() {
                        show_frame(&frame);
                        handled += 1;
                    }
                    println!("shutdown signal: stopping after {handled} messages");
                    return handled;
                }
                recv(idle) -> _ => {
                    println!("idle for 2 s: stopping after {handled} messages");
                    return handled;
                }
            }
            handled += 1;
        }
    });

    // Publish on both faces from this thread.
    alerts.publish(Alert {
        level: "info",
        text: "market open".into(),
    })?;
    pubsub.broadcast("chat/lobby", "hello from the lobby", &RawPayload)?;
    pubsub.broadcast("prices/EURUSD", "1.0842", &RawPayload)?;
    pubsub.broadcast("prices/GBPUSD", "1.2710", &RawPayload)?; // not subscribed: not delivered
    alerts.publish(Alert {
        level: "warn",
        text: "spread widening".into(),
    })?;
    pubsub.broadcast("prices/EURUSD", "1.0843", &RawPayload)?;

    // Every publish above has already queued its item: stop the consumer.
    drop(stop);
    let handled = consumer.join().expect("consumer panicked");
    assert_eq!(handled, 5, "2 alerts + 3 subscribed frames");
    Ok(())
}

fn show_alert(alert: &Alert) {
    println!("alert  [{}] {}", alert.level, alert.text);
}

/// Every `PubSub` item is a Push frame: version, kind, topic, payload.
fn show_frame(frame: &[u8]) {
    match decode(frame) {
        Ok(push) => println!(
            "push   {} <- {:?} ({} byte frame)",
            push.topic,
            String::from_utf8_lossy(push.payload),
            frame.len()
        ),
        Err(e) => println!("undecodable frame: {e}"),
    }
}
