//! The Unified Social Credit Identifier check character (统一社会信用代码,
//! GB 32100-2015, reference §5.1). Pure arithmetic; the shape (18 characters
//! from the charset) is the JSON Schema's job, so this only reports the check.
//!
//! The embedded organisation-code check (GB 11714, positions 9-17) is a
//! warning-level rule in the reference and is not enforced here.

/// The GB 32100 character set: digits and capital letters without I, O, S,
/// V, Z. A character's value is its position (0-30).
pub const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1-17: `3^(i-1) mod 31`.
pub const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Why a USCI failed the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsciProblem {
    /// Not 18 characters.
    Length(usize),
    /// A character GB 32100 does not use, at a 1-based position.
    Character(char, usize),
    /// The 18th character is not the computed check character.
    CheckCharacter {
        /// The character sent.
        found: char,
        /// The character the first 17 give.
        expected: char,
    },
}

impl std::fmt::Display for UsciProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Length(n) => write!(f, "USCI has {n} characters, expected 18"),
            Self::Character(c, pos) => write!(f, "USCI character {pos} is {c:?}, which GB 32100 does not use"),
            Self::CheckCharacter { found, expected } => {
                write!(f, "USCI check character is \"{found}\", expected \"{expected}\"")
            }
        }
    }
}

fn value(b: u8) -> Option<u32> {
    // A 31-entry scan is as fast as a table here and cannot go out of step with CHARSET.
    CHARSET.iter().position(|&c| c == b).and_then(|p| u32::try_from(p).ok())
}

/// The check character for the first 17 characters of `usci`, or the first
/// character outside the charset.
pub fn check_character(first17: &[u8]) -> Result<char, UsciProblem> {
    let mut sum = 0u32;
    for (i, (&b, w)) in first17.iter().zip(WEIGHTS).enumerate() {
        let v = value(b).ok_or(UsciProblem::Character(char::from(b), i + 1))?;
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    Ok(char::from(CHARSET[check as usize]))
}

/// Verifies a whole USCI: length, charset and check character.
pub fn verify(usci: &str) -> Result<(), UsciProblem> {
    let bytes = usci.as_bytes();
    if bytes.len() != 18 || !usci.is_ascii() {
        return match usci.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
            Some((i, c)) => Err(UsciProblem::Character(c, i + 1)),
            None => Err(UsciProblem::Length(usci.chars().count())),
        };
    }
    let expected = check_character(&bytes[..17])?;
    let found = char::from(bytes[17]);
    if value(bytes[17]).is_none() {
        return Err(UsciProblem::Character(found, 18));
    }
    if found == expected {
        Ok(())
    } else {
        Err(UsciProblem::CheckCharacter { found, expected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_powers_of_three_mod_31() {
        let mut w = 1u32;
        for expected in WEIGHTS {
            assert_eq!(w, expected);
            w = w * 3 % 31;
        }
    }

    /// Reference §5.1, worked example 1: sum 1640, 1640 mod 31 = 28, check `3`.
    #[test]
    fn accepts_the_public_test_vector() {
        assert_eq!(check_character(b"91350100M000100Y4"), Ok('3'));
        assert_eq!(verify("91350100M000100Y43"), Ok(()));
    }

    /// Reference §5.1, second example: sum 1782, mod 31 = 15, check `G`.
    #[test]
    fn accepts_the_second_worked_example() {
        assert_eq!(verify("9144030071526726XG"), Ok(()));
    }

    #[test]
    fn refuses_a_wrong_check_character_and_names_the_right_one() {
        let e = verify("91350100M000100Y4K").unwrap_err();
        assert_eq!(e, UsciProblem::CheckCharacter { found: 'K', expected: '3' });
        assert_eq!(e.to_string(), "USCI check character is \"K\", expected \"3\"");
        assert_eq!(
            verify("9144030071526726XH").unwrap_err(),
            UsciProblem::CheckCharacter { found: 'H', expected: 'G' }
        );
    }

    #[test]
    fn a_zero_remainder_gives_check_zero_and_30_gives_y() {
        // Every value 0..=30 of the check is reachable by changing position 17;
        // the character is always the one that makes the weighted sum ≡ 0 (mod 31).
        for b in CHARSET {
            let mut s = *b"91350100M000100Y4";
            s[16] = *b;
            let c = check_character(&s).unwrap();
            let sum: u32 = s
                .iter()
                .chain([c as u8].iter())
                .zip(WEIGHTS.iter().chain([1].iter()))
                .map(|(&b, w)| value(b).unwrap() * w)
                .sum();
            assert_eq!(sum % 31, 0, "{}", String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn reports_length_and_charset_problems() {
        assert_eq!(verify("91350100M000100Y4"), Err(UsciProblem::Length(17)));
        assert_eq!(verify("91350100M000100O43"), Err(UsciProblem::Character('O', 16)));
        assert_eq!(verify("91350100M000100Y4统"), Err(UsciProblem::Character('统', 18)));
    }
}
