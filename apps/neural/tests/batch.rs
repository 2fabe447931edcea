//! Batched embeddings and polarities on real model files: equal to one at a time, each input's
//! own error, the caller's order.

mod support;

use neural::{PolarityError, EMBEDDING_DIM, MAX_TOKENS};

/// Largest difference allowed between a batched and a one-at-a-time embedding, per dimension.
const TOLERANCE: f32 = 1e-5;

/// A text of `words` words of one token each: `words + 2` tokens with `[CLS]` and `[SEP]`.
fn words(words: usize) -> String {
    let pool = ["good", "the", "day", "rain", "cat", "happy", "city", "bad"];
    (0..words)
        .map(|i| pool[i % pool.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sentences of mixed length in no order: one real token, near the 256-token limit, over it
/// (truncated), duplicates, and ordinary sentences.
fn mixed() -> Vec<String> {
    vec![
        "The hotel in Leeds was lovely and the staff were kind.".into(),
        "a".into(),
        words(MAX_TOKENS - 3),
        "Yesterday Maria hated the train ride; it was awful.".into(),
        "The hotel in Leeds was lovely and the staff were kind.".into(),
        words(5_000),
        "Rain.".into(),
        "The museum at Smith and Sons was quiet, and Tom read about it.".into(),
        words(40),
        "a".into(),
        "Ünïcödé façade, naïve café! 😀".into(),
        words(MAX_TOKENS - 3),
    ]
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_mixed_batch_has_the_lengths_it_claims() {
    let analyzer = support::analyzer();
    let texts = mixed();
    let count = |t: &str| analyzer.token_count(t).unwrap();
    assert_eq!(count(&texts[1]), 3, "one real token");
    assert_eq!(count(&texts[2]), MAX_TOKENS - 1, "near the limit");
    assert_eq!(count(&texts[5]), MAX_TOKENS, "truncated");
    assert!(count(&texts[0]) > 10 && count(&texts[0]) < 20);
}

#[test]
fn batched_embeddings_equal_one_at_a_time() {
    let analyzer = support::analyzer();
    let texts = mixed();
    let batched = analyzer.embed_batch(&texts);
    assert_eq!(batched.len(), texts.len());
    let mut worst = 0.0f32;
    for (text, got) in texts.iter().zip(&batched) {
        let got = got.as_ref().expect("batched embedding");
        let alone = analyzer.embed(text).expect("embedding alone");
        assert_eq!(got.len(), EMBEDDING_DIM);
        let diff = max_difference(got, &alone);
        assert!(diff <= TOLERANCE, "{:.40}: differs by {diff}", text);
        worst = worst.max(diff);
    }
    println!("largest difference, batched against alone: {worst:e}");
}

#[test]
fn batched_polarities_equal_one_at_a_time_in_every_batch_size() {
    let analyzer = support::analyzer();
    let texts = mixed();
    let alone: Vec<f32> = texts
        .iter()
        .map(|t| analyzer.polarity(t).unwrap())
        .collect();
    for size in [1, 2, 3, 5, 8, texts.len()] {
        for (chunk, expected) in texts.chunks(size).zip(alone.chunks(size)) {
            let got = analyzer.polarity_batch(chunk);
            for ((text, got), want) in chunk.iter().zip(got).zip(expected) {
                let got = got.expect("batched polarity");
                assert!(
                    (got - want).abs() <= TOLERANCE,
                    "batch of {size}, {text:.40}: {got} != {want}"
                );
            }
        }
    }
}

#[test]
fn each_input_keeps_its_own_error() {
    let analyzer = support::analyzer();
    let texts = [
        "What a wonderful, happy day!",
        "",
        "This is a horrible, miserable mess.",
        " \n\t ",
        "\u{1}\u{2}\u{3}",
        "The meeting is at three.",
    ];
    let got = analyzer.polarity_batch(&texts);
    assert_eq!(got.len(), texts.len());
    for (i, (text, result)) in texts.iter().zip(&got).enumerate() {
        match analyzer.polarity(text) {
            Ok(want) => {
                let p = result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{i} {text:?}: {e}"));
                assert!((p - want).abs() <= TOLERANCE, "{i} {text:?}: {p} != {want}");
            }
            Err(_) => assert!(
                matches!(result, Err(PolarityError::Empty)),
                "{i} {text:?}: {result:?}"
            ),
        }
    }
    assert!(*got[0].as_ref().unwrap() > 0.0);
    assert!(*got[2].as_ref().unwrap() < 0.0);
    assert_eq!(got.iter().filter(|r| r.is_err()).count(), 3);
}

#[test]
fn a_batch_of_nothing_but_errors_and_an_empty_batch() {
    let analyzer = support::analyzer();
    let got = analyzer.embed_batch(&["", "   "]);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| matches!(r, Err(PolarityError::Empty))));
    assert!(analyzer.embed_batch::<&str>(&[]).is_empty());
    assert!(analyzer.polarity_batch::<String>(&[]).is_empty());
}

#[test]
fn results_come_back_in_the_callers_order() {
    let analyzer = support::analyzer();
    // Longest first, so that the length grouping reorders them; each text distinct.
    let texts: Vec<String> = (1..=24).rev().map(|n| words(n * 3)).collect();
    let batched = analyzer.embed_batch(&texts);
    let alone: Vec<Vec<f32>> = texts.iter().map(|t| analyzer.embed(t).unwrap()).collect();
    for (i, got) in batched.iter().enumerate() {
        let got = got.as_ref().unwrap();
        // The closest one-at-a-time embedding is the one of the same text.
        let nearest = (0..alone.len())
            .min_by(|&a, &b| {
                max_difference(got, &alone[a]).total_cmp(&max_difference(got, &alone[b]))
            })
            .unwrap();
        assert_eq!(nearest, i, "result {i} belongs to text {nearest}");
        assert!(max_difference(got, &alone[i]) <= TOLERANCE);
    }
}
