//! Exact decimal numbers for quantities: parse, shift by powers of ten (unit
//! conversion), round and print, with no binary floating point anywhere.
//!
//! Legal quantities (tonnes on a manifest, kilograms on a weighbridge ticket)
//! must survive a kg ⇄ t round trip digit for digit, so a value is held as an
//! integer mantissa and a decimal scale.

use std::fmt;

/// Most fractional digits a value may carry (far beyond any unit in use).
const MAX_SCALE: u32 = 30;

/// A decimal number `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// How [`Decimal::round`] breaks ties and drops digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// 0.5 goes away from zero (the rule on Chinese forms and weighbridge tickets).
    HalfUp,
    /// 0.5 goes to the even neighbour (banker's rounding).
    HalfEven,
    /// Extra digits are cut off.
    Down,
    /// Refuse to drop a non-zero digit: the value must already fit the scale.
    Exact,
}

impl Rounding {
    /// Parses the name used in mapping files.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "half-up" => Some(Self::HalfUp),
            "half-even" => Some(Self::HalfEven),
            "down" => Some(Self::Down),
            "exact" => Some(Self::Exact),
            _ => None,
        }
    }
}

impl Decimal {
    /// Parses `-12.500`, `+3`, `0.25`, `7.`: an optional sign, digits, an
    /// optional point and digits. Exponents, spaces and separators are refused
    /// so that a partner's `1,200` is an error rather than 1.2.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a decimal number");
        let (negative, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let scale = u32::try_from(frac.len()).map_err(|_| bad())?;
        if scale > MAX_SCALE {
            return Err(format!("{text:?} has more than {MAX_SCALE} decimal places"));
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(|| format!("{text:?} has too many digits"))?;
        }
        Ok(Self {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// Multiplies by `10^places` (negative places divide), exactly.
    pub fn shift(self, places: i32) -> Result<Self, String> {
        let overflow = || format!("{self} × 10^{places} is out of range");
        if places >= 0 {
            let p = places.unsigned_abs();
            if self.scale >= p {
                Ok(Self {
                    mantissa: self.mantissa,
                    scale: self.scale - p,
                })
            } else {
                let factor = 10i128.checked_pow(p - self.scale).ok_or_else(overflow)?;
                Ok(Self {
                    mantissa: self.mantissa.checked_mul(factor).ok_or_else(overflow)?,
                    scale: 0,
                })
            }
        } else {
            let scale = self.scale + places.unsigned_abs();
            if scale > MAX_SCALE {
                return Err(overflow());
            }
            Ok(Self {
                mantissa: self.mantissa,
                scale,
            })
        }
    }

    /// Rounds (or pads) to exactly `scale` fractional digits.
    pub fn round(self, scale: u32, mode: Rounding) -> Result<Self, String> {
        if scale >= self.scale {
            let factor = 10i128.checked_pow(scale - self.scale).ok_or("scale out of range")?;
            return Ok(Self {
                mantissa: self.mantissa.checked_mul(factor).ok_or("value out of range")?,
                scale,
            });
        }
        let divisor = 10i128.pow(self.scale - scale);
        let quotient = self.mantissa / divisor;
        let remainder = (self.mantissa % divisor).abs();
        let half = divisor / 2;
        let away = match mode {
            Rounding::Down => false,
            Rounding::Exact if remainder != 0 => {
                return Err(format!("{self} has more than {scale} decimal places"));
            }
            Rounding::Exact => false,
            Rounding::HalfUp => remainder >= half,
            Rounding::HalfEven => remainder > half || (remainder == half && quotient % 2 != 0),
        };
        let step = if self.mantissa < 0 { -1 } else { 1 };
        Ok(Self {
            mantissa: if away { quotient + step } else { quotient },
            scale,
        })
    }

    /// Drops trailing fractional zeros: `1.800` → `1.8`, `5.000` → `5`.
    pub fn normalized(mut self) -> Self {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    /// Whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

/// Powers of ten of the units the `unit` operation converts between, by
/// dimension: mass in grams, volume in litres, angle in degrees (`udeg`,
/// millionths of a degree, is how JT/T 808 and JT/T 809 carry coordinates).
pub fn unit_exponent(unit: &str) -> Option<(&'static str, i32)> {
    Some(match unit {
        "t" => ("mass", 6),
        "kg" => ("mass", 3),
        "g" => ("mass", 0),
        "mg" => ("mass", -3),
        "m3" => ("volume", 3),
        "L" => ("volume", 0),
        "mL" => ("volume", -3),
        "deg" => ("angle", 0),
        "udeg" => ("angle", -6),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn kg_to_t_and_back_is_exact() {
        assert_eq!(d("1800").shift(-3).unwrap().normalized().to_string(), "1.8");
        assert_eq!(d("0.001").shift(3).unwrap().to_string(), "1");
        assert_eq!(d("0.1").shift(-3).unwrap().to_string(), "0.0001");
        // 0.1 + 0.2 style float traps do not exist here.
        assert_eq!(
            d("123456789.123456789").shift(3).unwrap().shift(-3).unwrap(),
            d("123456789.123456789")
        );
    }

    #[test]
    fn millionths_of_a_degree_to_degrees() {
        let (dim, from) = unit_exponent("udeg").unwrap();
        let (same, to) = unit_exponent("deg").unwrap();
        assert_eq!(dim, same);
        assert_eq!(d("25711542").shift(from - to).unwrap().normalized().to_string(), "25.711542");
        assert_eq!(d("-119359870").shift(from - to).unwrap().normalized().to_string(), "-119.35987");
        assert_ne!(unit_exponent("kg").unwrap().0, dim, "an angle is not a mass");
    }

    #[test]
    fn rounding_modes() {
        assert_eq!(d("2.345").round(2, Rounding::HalfUp).unwrap().to_string(), "2.35");
        assert_eq!(d("2.345").round(2, Rounding::HalfEven).unwrap().to_string(), "2.34");
        assert_eq!(d("2.355").round(2, Rounding::HalfEven).unwrap().to_string(), "2.36");
        assert_eq!(d("-2.345").round(2, Rounding::HalfUp).unwrap().to_string(), "-2.35");
        assert_eq!(d("2.349").round(2, Rounding::Down).unwrap().to_string(), "2.34");
        assert_eq!(d("2.5").round(3, Rounding::Exact).unwrap().to_string(), "2.500");
        assert!(d("2.5001").round(3, Rounding::Exact).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in ["", "-", ".", "1e3", "1,200", " 1", "1 ", "0x10", "１２"] {
            assert!(Decimal::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(d("+.5").to_string(), "0.5");
        assert_eq!(d("7.").to_string(), "7");
        assert_eq!(d("-0.05").to_string(), "-0.05");
    }
}
