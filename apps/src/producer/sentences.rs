//! English sentences that read like real speech and carry a polarity, for the polarity tasks.
//!
//! `fake`'s lorem text is Latin, so sentences are composed from `fake`'s English fakers (names,
//! companies) and short lists of our own positive, negative and neutral words.

use fake::faker::company::en::CompanyName;
use fake::faker::name::en::FirstName;
use fake::Fake;
use rand::seq::IndexedRandom;
use rand::Rng;

const POSITIVE: &[&str] = &[
    "loved",
    "enjoyed",
    "was delighted by",
    "was impressed by",
    "really liked",
    "adored",
    "was thrilled with",
    "praised",
];
const NEGATIVE: &[&str] = &[
    "hated",
    "was disappointed by",
    "was annoyed by",
    "complained about",
    "regretted",
    "was frustrated with",
    "could not stand",
    "was upset about",
];
const NEUTRAL: &[&str] = &[
    "visited",
    "talked about",
    "looked at",
    "mentioned",
    "read about",
];
const GOOD: &[&str] = &[
    "wonderful",
    "friendly",
    "excellent",
    "delicious",
    "beautiful",
    "cheerful",
    "helpful",
];
const BAD: &[&str] = &[
    "terrible",
    "rude",
    "awful",
    "filthy",
    "boring",
    "broken",
    "overpriced",
];
const PLAIN: &[&str] = &["new", "old", "small", "large", "local", "quiet"];
const CITIES: &[&str] = &[
    "Boston", "Leeds", "Denver", "Glasgow", "Austin", "Dublin", "Seattle", "Bristol", "Toronto",
    "Perth",
];
const THINGS: &[&str] = &[
    "coffee",
    "hotel",
    "concert",
    "service",
    "museum",
    "restaurant",
    "train ride",
    "movie",
    "bakery",
    "support team",
];

/// The polarity a sentence was written to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Written to read positive.
    Positive,
    /// Written to read negative.
    Negative,
    /// Written to read neither.
    Neutral,
}

/// A random sentence and the tone it was written with.
pub fn sentence(rng: &mut impl Rng) -> (String, Tone) {
    let tone = match rng.random_range(0..5) {
        0 | 1 => Tone::Positive,
        2 | 3 => Tone::Negative,
        _ => Tone::Neutral,
    };
    let (verbs, adjectives) = match tone {
        Tone::Positive => (POSITIVE, GOOD),
        Tone::Negative => (NEGATIVE, BAD),
        Tone::Neutral => (NEUTRAL, PLAIN),
    };
    let name: String = FirstName().fake_with_rng(rng);
    let verb = pick(verbs, rng);
    let adjective = pick(adjectives, rng);
    let thing = pick(THINGS, rng);
    let text = match rng.random_range(0..3) {
        0 => {
            let city = pick(CITIES, rng);
            format!("{name} {verb} the {adjective} {thing} in {city}.")
        }
        1 => {
            let company: String = CompanyName().fake_with_rng(rng);
            format!("The {thing} at {company} was {adjective}, and {name} {verb} it.")
        }
        _ => format!("Yesterday {name} {verb} the {thing}; it was {adjective}."),
    };
    (text, tone)
}

fn pick<'a>(words: &[&'a str], rng: &mut impl Rng) -> &'a str {
    words.choose(rng).copied().unwrap_or("fine")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn sentences_are_reproducible_english() {
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let (text, tone) = sentence(&mut a);
            assert_eq!((text.clone(), tone), sentence(&mut b));
            assert!(
                text.ends_with('.') && text.split(' ').count() >= 5,
                "{text}"
            );
            assert!(text.is_ascii() || text.chars().all(|c| !c.is_control()));
        }
    }
}
