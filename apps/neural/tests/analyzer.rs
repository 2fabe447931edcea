//! The analyzer's contract on real model files: bounds, errors, truncation, unit norm.

mod support;

use neural::{PolarityError, EMBEDDING_DIM};

#[test]
fn polarity_is_within_bounds() {
    let analyzer = support::analyzer();
    for text in [
        "I love this!",
        "I hate this!",
        "The meeting is at three.",
        "a",
        "?!",
        "😀😀😀",
        "Ünïcödé façade naïve café",
        "good good good good good good good good good good good good good",
        "awful awful awful awful awful awful awful awful awful awful awful",
    ] {
        let p = analyzer.polarity(text).expect(text);
        assert!((-1.0..=1.0).contains(&p), "{text:?}: {p}");
    }
}

#[test]
fn clear_sentences_get_the_right_sign() {
    let analyzer = support::analyzer();
    assert!(analyzer.polarity("What a wonderful, happy day!").unwrap() > 0.0);
    assert!(
        analyzer
            .polarity("This is a horrible, miserable mess.")
            .unwrap()
            < 0.0
    );
}

#[test]
fn empty_input_is_an_error() {
    let analyzer = support::analyzer();
    for text in ["", " ", "\n\t  \r\n"] {
        let err = analyzer.polarity(text).expect_err(text);
        assert!(matches!(err, PolarityError::Empty), "{text:?}: {err}");
        assert_eq!(err.to_string(), "sentence is empty");
        assert!(matches!(analyzer.embed(text), Err(PolarityError::Empty)));
    }
}

#[test]
fn very_long_input_is_truncated_and_works() {
    let analyzer = support::analyzer();
    let words = ["the", "quick", "brown", "fox", "was", "happy", "today"];
    let text: String = (0..5000)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let p = analyzer.polarity(&text).expect("5,000 words");
    assert!((-1.0..=1.0).contains(&p));
    // Everything past the first 256 tokens is cut, so a different tail changes nothing.
    let other_tail = format!("{text} and then everything was terrible and awful");
    let q = analyzer.polarity(&other_tail).expect("longer still");
    assert_eq!(p, q);
    // One 100,000-character "word" is also cut, not refused, and so are 10 MB of text.
    let blob = "x".repeat(100_000);
    assert!(analyzer.polarity(&blob).is_ok());
    let huge = "Lovely day. ".repeat(900_000);
    let started = std::time::Instant::now();
    assert!(analyzer.polarity(&huge).expect("10 MB") > 0.0);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn embeddings_have_unit_norm() {
    let analyzer = support::analyzer();
    for text in [
        "Hello there.",
        "A much longer sentence about the weather in the hills.",
        "x",
    ] {
        let e = analyzer.embed(text).expect(text);
        assert_eq!(e.len(), EMBEDDING_DIM);
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let analyzer = support::analyzer();
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let a = analyzer.embed("The cat sits on the mat.").unwrap();
    let b = analyzer.embed("A cat is sitting on a rug.").unwrap();
    let c = analyzer
        .embed("Interest rates rose again this quarter.")
        .unwrap();
    assert!(cos(&a, &b) > cos(&a, &c) + 0.2);
}

#[test]
fn many_threads_share_one_analyzer() {
    let analyzer = support::analyzer();
    let expected = analyzer.polarity("The soup was lovely.").unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(analyzer.polarity("The soup was lovely.").unwrap(), expected);
                }
            });
        }
    });
}

#[test]
fn embedding_matches_the_reference() {
    // From scripts/reference_embed.py, an independent float64 numpy forward pass; the Rust
    // embeddings agreed with it to 1.6e-7 in every dimension on the sentences tried.
    const FIRST: [f32; 8] = [
        0.1341771, -0.0329003, -0.0248037, 0.041439, -0.0363476, 0.0418142, 0.0312167, 0.0372016,
    ];
    const WEIGHTED_SUM: f32 = 3.581_640_4; // sum of e[i] * (i % 7 - 3)
    let e = support::analyzer()
        .embed("The cat sits on the mat.")
        .unwrap();
    for (i, (got, want)) in e.iter().zip(FIRST).enumerate() {
        assert!((got - want).abs() < 1e-5, "dimension {i}: {got} != {want}");
    }
    let sum: f32 = e
        .iter()
        .enumerate()
        .map(|(i, v)| v * ((i % 7) as f32 - 3.0))
        .sum();
    assert!((sum - WEIGHTED_SUM).abs() < 1e-4, "{sum}");
}
