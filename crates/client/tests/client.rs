//! The client against a real in-process server: inference with text and an image, a job
//! submitted then polled to its result, a cancelled job, health and readiness, search, an
//! authentication error carrying the server's message, and a refused connection.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::*;
use omnifuse_client::{ClientError, HeadResult, Input, JobState, Parameters, UnifiedModelClient};
use omnifuse_http::ApiKeys;

#[test]
fn infer_answers_text_and_an_image() {
    let (_server, url) = start(config(), ApiKeys::none());
    let client = UnifiedModelClient::new(&url, None).unwrap();
    let inputs = [Input::text("a calm sea at dawn"), Input::file("sea.png", png(20, 14)).unwrap()];
    let r = client.infer(&inputs, &Parameters::default().task("sentiment").task("retrieval")).unwrap();
    assert_eq!(r.model, "omni-small");
    let modalities: Vec<&str> = r.inputs.iter().map(|i| i.modality.as_str()).collect();
    assert_eq!(modalities, ["text", "image"]);
    assert_eq!(r.heads.keys().collect::<Vec<_>>(), ["retrieval", "sentiment"]);
    match &r.heads["sentiment"] {
        HeadResult::Classification { label, labels, probabilities } => {
            assert!(labels.contains(label));
            assert_eq!(labels.len(), probabilities.len());
        }
        other => panic!("sentiment is not a classification: {other:?}"),
    }
    match &r.heads["retrieval"] {
        HeadResult::Retrieval { inputs, .. } => assert_eq!(inputs.len(), 2),
        other => panic!("retrieval is not retrieval: {other:?}"),
    }
    // The typed answer is the server's JSON, read back.
    let raw = client.infer_json(&inputs, &Parameters::default().task("sentiment")).unwrap();
    assert_eq!(raw["heads"]["sentiment"]["kind"], "classification");
    let e = client.infer(&[Input::text("x")], &Parameters::default().task("juggling")).unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    assert!(e.to_string().contains("unknown task 'juggling'"), "{e}");
}

#[test]
fn a_job_is_polled_to_its_result_and_another_is_cancelled() {
    let mut c = config();
    c.batching.max_delay_ms = 400;
    let (_server, url) = start(c, ApiKeys::none());
    let client = UnifiedModelClient::new(&url, None).unwrap();
    let job = client.submit_async(&[Input::text("hello")], &Parameters::default().task("retrieval")).unwrap();
    assert!(job.id().starts_with("job-"), "{}", job.id());
    let r = job.result().unwrap();
    assert!(job.ready().unwrap(), "a job with a result is ready");
    assert!(matches!(&r.heads["retrieval"], HeadResult::Retrieval { fused, .. } if fused.len() == 128));
    assert!(matches!(client.job(job.id()).unwrap().state().unwrap(), JobState::Done(_)));
    assert_eq!(job.cancel().unwrap(), "deleted");
    let e = job.state().unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");

    // Queued behind a 400 ms batching delay: cancelled before it runs.
    let queued = client.submit_async(&[Input::text("never")], &Parameters::default()).unwrap();
    assert_eq!(queued.cancel().unwrap(), "cancelled");
    assert_eq!(queued.state().unwrap(), JobState::Cancelled);
    assert!(queued.ready().unwrap());
    let e = queued.result().unwrap_err();
    assert!(matches!(e, ClientError::Job { .. }) && e.to_string().contains("was cancelled"), "{e}");
    assert!(client.job("../metrics").is_err(), "an id that is not one is refused before sending");
}

#[test]
fn health_readiness_and_search() {
    let (_server, url) = start(config(), ApiKeys::none());
    let client = UnifiedModelClient::new(&url, None).unwrap();
    assert!(client.health().unwrap());
    assert!(client.ready().unwrap(), "spawn returns once warmed up");
    let entries = client
        .index_add(
            "photos",
            &[
                Input::file("a", png(16, 16)).unwrap(),
                Input::text("a red square"),
                Input::file("b", png(24, 8)).unwrap(),
            ],
            &["square.png", "caption", "wide.png"],
        )
        .unwrap();
    assert_eq!(entries, 3);
    let found = client.search_text("photos", "a red square", 5).unwrap();
    let keys: Vec<&str> = found.matches.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "text finds the two images: {keys:?}");
    let found = client.search("photos", &Input::file("q", png(16, 16)).unwrap(), 3).unwrap();
    assert_eq!(found.matches.len(), 1);
    assert_eq!(found.matches[0].key, "caption");
    let e = client.search_text("nowhere", "x", 1).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(client.metrics().unwrap().contains("omnifuse_http_requests_total"));
}

#[test]
fn a_wrong_key_is_a_401_with_the_servers_message() {
    let (_server, url) = start(config(), ApiKeys::new(["right-key"]));
    let wrong = UnifiedModelClient::new(&url, Some("wrong-key")).unwrap();
    let e = wrong.infer(&[Input::text("x")], &Parameters::default()).unwrap_err();
    match &e {
        ClientError::Http { status, path, message, .. } => {
            assert_eq!((*status, path.as_str()), (401, "/v1/infer"));
            assert!(!message.is_empty() && !message.starts_with('{'), "the message is the server's text: {message}");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    let none = UnifiedModelClient::new(&url, None).unwrap();
    assert_eq!(none.submit_async(&[Input::text("x")], &Parameters::default()).unwrap_err().status(), Some(401));
    assert!(none.health().unwrap(), "the health probes need no key");
    let right = UnifiedModelClient::new(&url, Some("right-key")).unwrap();
    assert!(right.infer(&[Input::text("x")], &Parameters::default().task("sentiment")).is_ok());
}

#[test]
fn a_refused_connection_names_the_endpoint() {
    let addr = closed_port();
    let client = UnifiedModelClient::new(&addr.to_string(), None).unwrap();
    let e = client.health().unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("http://{addr}")), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}
