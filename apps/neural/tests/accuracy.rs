//! Sign agreement of the polarity with hand-labeled sentences (`data/labeled_sentences.tsv`).

mod support;

/// The least share of sentences whose polarity has the labeled sign.
const MIN_ACCURACY: f64 = 0.85;

#[test]
fn labeled_sentences_get_the_right_sign() {
    let analyzer = support::analyzer();
    let rows = support::labeled("labeled_sentences.tsv");
    assert!(rows.len() >= 200, "only {} labeled sentences", rows.len());

    let mut wrong = Vec::new();
    let (mut pos_ok, mut neg_ok, mut pos_n, mut neg_n) = (0, 0, 0, 0);
    for (positive, sentence) in &rows {
        let p = analyzer
            .polarity(sentence)
            .unwrap_or_else(|e| panic!("{sentence:?}: {e}"));
        assert!((-1.0..=1.0).contains(&p), "{sentence:?}: {p}");
        let ok = (p > 0.0) == *positive;
        if *positive {
            pos_n += 1;
            pos_ok += usize::from(ok);
        } else {
            neg_n += 1;
            neg_ok += usize::from(ok);
        }
        if !ok {
            wrong.push(format!(
                "  {p:+.3}  {}  {sentence}",
                if *positive { "pos" } else { "neg" }
            ));
        }
    }
    let accuracy = (pos_ok + neg_ok) as f64 / rows.len() as f64;
    println!(
        "sign accuracy {:.1}% ({}/{}): positive {pos_ok}/{pos_n}, negative {neg_ok}/{neg_n}",
        accuracy * 100.0,
        pos_ok + neg_ok,
        rows.len()
    );
    println!("wrong sign:\n{}", wrong.join("\n"));
    assert!(
        accuracy >= MIN_ACCURACY,
        "sign accuracy {:.1}% is below {:.0}%",
        accuracy * 100.0,
        MIN_ACCURACY * 100.0
    );
}
