//! Deterministic generators of realistic Fujian registry data for the
//! department simulators: counties from the shipped division table,
//! Unified Social Credit Identifiers with both check characters, people's
//! names, telephone numbers, plates and times in Beijing time.
//!
//! Everything is drawn from a seeded [`fastrand::Rng`], so a seed always
//! gives the same registry. Names of towns, villages, streets and brands are
//! plausible, not real: they are not tied to the county they are put in.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, SecondsFormat};

use crate::reference::usci;

/// The division table shipped with the hub (GB/T 2260, Fujian in full).
const DIVISIONS_CSV: &str = include_str!("../../schemas/reference/divisions.csv");

/// One county-level division with what the generators need of its city.
#[derive(Clone, Debug)]
pub struct County {
    /// Six-digit division code, e.g. `350211`.
    pub code: String,
    /// Its name, e.g. `集美区`.
    pub name: String,
    /// The prefecture-level city's name, e.g. `厦门市`.
    pub city: String,
    /// The city's code, e.g. `350200`.
    pub city_code: String,
    /// Plate prefix of the city, e.g. `闽D`.
    pub plate: String,
    /// Approximate centre of the city (latitude, longitude), WGS-84.
    pub centre: (f64, f64),
}

impl County {
    /// The name without its last character (区, 县, 市): `集美`.
    pub fn stem(&self) -> &str {
        stem(&self.name)
    }

    /// The city's name without 市: `厦门`.
    pub fn city_stem(&self) -> &str {
        stem(&self.city)
    }

    /// The one-character short name of the city used in transport licence
    /// numbers (厦 in 闽交运管许可厦字…).
    pub fn city_short(&self) -> &'static str {
        CITY_FACTS.iter().find(|f| f.0 == self.city_code).map(|f| f.1).unwrap_or("闽")
    }

    /// The city's telephone area code (0592 for Xiamen).
    pub fn area_code(&self) -> &'static str {
        CITY_FACTS.iter().find(|f| f.0 == self.city_code).map(|f| f.2).unwrap_or("0591")
    }
}

fn stem(name: &str) -> &str {
    let cut = name.char_indices().last().map_or(0, |(i, _)| i);
    &name[..cut]
}

/// City code, licence short name, telephone area code, centre (lat, lon).
const CITY_FACTS: [(&str, &str, &str, (f64, f64)); 9] = [
    ("350100", "榕", "0591", (26.0745, 119.2965)),
    ("350200", "厦", "0592", (24.4798, 118.0894)),
    ("350300", "莆", "0594", (25.4540, 119.0078)),
    ("350400", "明", "0598", (26.2654, 117.6392)),
    ("350500", "泉", "0595", (24.8741, 118.6757)),
    ("350600", "漳", "0596", (24.5130, 117.6471)),
    ("350700", "南", "0599", (26.6418, 118.1777)),
    ("350800", "岩", "0597", (25.0752, 117.0174)),
    ("350900", "宁", "0593", (26.6657, 119.5480)),
];

/// The county-level divisions of Fujian the province administers (Jinmen,
/// 金门县, has a code but no registry), from the shipped table.
pub fn counties() -> anyhow::Result<Vec<County>> {
    let mut reader = csv::Reader::from_reader(DIVISIONS_CSV.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().context("reading divisions.csv")?;
    let field = |r: &csv::StringRecord, i: usize| r.get(i).unwrap_or_default().to_string();
    let cities: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| r.get(3) == Some("prefecture"))
        .map(|r| (field(r, 0), field(r, 1), field(r, 5)))
        .collect();
    let mut out = Vec::new();
    for r in &rows {
        let level = r.get(3).unwrap_or_default();
        let code = field(r, 0);
        if !matches!(level, "district" | "county" | "county_city" | "special_zone_county") || code == "350527" {
            continue;
        }
        let parent = field(r, 4);
        let Some((city_code, city, plate)) = cities.iter().find(|c| c.0 == parent) else {
            continue;
        };
        let centre = CITY_FACTS.iter().find(|f| f.0 == city_code).map_or((26.0, 118.0), |f| f.3);
        out.push(County {
            code,
            name: field(r, 1),
            city: city.clone(),
            city_code: city_code.clone(),
            plate: plate.clone(),
            centre,
        });
    }
    anyhow::ensure!(out.len() > 50, "divisions.csv has only {} counties", out.len());
    Ok(out)
}

/// Surnames common in Fujian.
const SURNAMES: [&str; 28] = [
    "陈", "林", "黄", "张", "吴", "王", "李", "郑", "刘", "蔡", "杨", "许", "洪", "郭", "曾", "游", "叶", "苏", "庄", "翁", "施", "魏",
    "邱", "谢", "何", "周", "卢", "江",
];
const GIVEN: [&str; 30] = [
    "伟", "建华", "文斌", "丽娟", "志明", "国栋", "秀英", "金水", "志勇", "丽华", "德明", "雅婷", "建伟", "俊杰", "丽萍", "国华", "海燕",
    "明辉", "晓东", "少峰", "美玲", "清泉", "福生", "春梅", "振东", "晓燕", "文辉", "荣华", "宝珠", "兴旺",
];
/// Town stems (镇), street stems (街道) and village stems (村).
pub const TOWNS: [&str; 16] = [
    "洋中", "塔山", "江口", "梧塘", "榜头", "枫亭", "马巷", "新圩", "洪塘", "青口", "上街", "南通", "官坂", "湖头", "金淘", "安海",
];
/// Street stems.
pub const STREETS: [&str; 10] = ["东街", "南街", "西门", "城关", "凤凰", "江滨", "鲤城", "金山", "华林", "湖东"];
/// Village stems.
pub const VILLAGES: [&str; 12] = [
    "坝下", "后洋", "东山", "前埔", "溪口", "上坪", "岭头", "新厝", "洋边", "林墩", "后垵", "湖边",
];
/// Road names.
pub const ROADS: [&str; 10] = [
    "人民路",
    "解放路",
    "中山路",
    "建设路",
    "江滨路",
    "府前路",
    "工业路",
    "湖滨路",
    "环城路",
    "站前路",
];

/// A seeded generator.
#[derive(Debug)]
pub struct Gen {
    /// The random source; public so callers can draw their own choices.
    pub rng: fastrand::Rng,
}

impl Gen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// One of `items`.
    ///
    /// # Panics
    /// When `items` is empty (the callers pass constant, non-empty lists).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    /// A person's name.
    pub fn person(&mut self) -> String {
        format!("{}{}", self.pick(&SURNAMES), self.pick(&GIVEN))
    }

    /// A mobile number (11 digits, 13x/15x/18x).
    pub fn mobile(&mut self) -> String {
        let head = *self.pick(&["135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "189"]);
        format!("{head}{:08}", self.rng.u32(0..100_000_000))
    }

    /// A landline in the county's city: `0592-5761234`.
    pub fn landline(&mut self, county: &County) -> String {
        format!("{}-{}", county.area_code(), self.rng.u32(2_000_000..8_999_999))
    }

    /// `n` characters from the GB 32100 character set.
    pub fn code_chars(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(usci::CHARSET))).collect()
    }

    /// A USCI: `prefix` (registration authority and unit type, e.g. `91`
    /// for a company, `12` for a public institution, `52` for a private
    /// non-enterprise unit, `92` for a sole trader), the county code, an
    /// organisation code with its GB 11714 check character and the GB 32100
    /// check character. `org8` is the organisation code's body.
    pub fn usci(&mut self, prefix: &str, county: &County, org8: &str) -> String {
        let first17 = format!("{prefix}{}{org8}{}", county.code, org_check(org8));
        let check = usci::check_character(first17.as_bytes()).unwrap_or('0');
        format!("{first17}{check}")
    }

    /// The organisation-code body of a unit registered after 2015 (`MA…`).
    pub fn org8_new(&mut self) -> String {
        format!("MA{}", self.code_chars(6))
    }

    /// The organisation-code body of a public institution (`4880…`).
    pub fn org8_public(&mut self) -> String {
        format!("488{:05}", self.rng.u32(0..100_000))
    }

    /// A plate of a truck registered in the county's city. `style` picks
    /// the kind; a middle dot after the city letter when `dot`.
    pub fn plate(&mut self, county: &County, style: PlateStyle, dot: bool) -> String {
        const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        let digit = |g: &mut Self| char::from(b'0' + g.rng.u8(0..10));
        let mut tail = String::new();
        match style {
            PlateStyle::Truck => {
                // Mostly digits, with at most two letters.
                let letters = [self.rng.usize(0..5), self.rng.usize(0..5)];
                for i in 0..5 {
                    if letters.contains(&i) && self.chance(0.5) {
                        tail.push(char::from(*self.pick(LETTERS)));
                    } else {
                        tail.push(digit(self));
                    }
                }
            }
            PlateStyle::Trailer => {
                for _ in 0..4 {
                    tail.push(digit(self));
                }
                tail.push('挂');
            }
            PlateStyle::NewEnergy => {
                tail.push(if self.rng.bool() { 'D' } else { 'F' });
                for _ in 0..5 {
                    tail.push(digit(self));
                }
            }
        }
        let (province_city, sep) = (&county.plate, if dot { "·" } else { "" });
        let mut chars = province_city.chars();
        let province: String = chars.next().map(String::from).unwrap_or_default();
        let city: String = chars.collect();
        format!("{province}{city}{sep}{tail}")
    }

    /// A date between two years (inclusive), as `YYYY-MM-DD`.
    pub fn date(&mut self, from_year: i32, to_year: i32) -> String {
        let year = self.rng.i32(from_year..=to_year);
        let month = self.rng.u32(1..=12);
        let day = match month {
            2 => self.rng.u32(1..=28),
            4 | 6 | 9 | 11 => self.rng.u32(1..=30),
            _ => self.rng.u32(1..=31),
        };
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// A point near `centre`, within `spread` degrees, rounded to 5 decimals.
    pub fn near(&mut self, centre: (f64, f64), spread: f64) -> (f64, f64) {
        let jitter = |g: &mut Self| (g.rng.f64() * 2.0 - 1.0) * spread;
        let round = |v: f64| (v * 100_000.0).round() / 100_000.0;
        (round(centre.0 + jitter(self)), round(centre.1 + jitter(self)))
    }
}

/// Kinds of plate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateStyle {
    /// A truck: city letter and five characters.
    Truck,
    /// A semi-trailer: four digits and 挂.
    Trailer,
    /// A new-energy truck: D or F and five digits.
    NewEnergy,
}

/// The GB 11714 check character of an organisation code body (8 digits or
/// capital letters): weights 3 7 9 10 5 8 4 2, modulus 11, 10 written `X`.
pub fn org_check(body: &str) -> char {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let value = |c: char| c.to_digit(36).unwrap_or(0);
    let sum: u32 = body.chars().zip(WEIGHTS).map(|(c, w)| value(c) * w).sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10).unwrap_or('0'),
    }
}

/// Beijing time.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC is a valid offset"))
}

/// Milliseconds since the epoch as RFC 3339 in Beijing time with
/// milliseconds: `2026-03-02T10:15:27.481+08:00`.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&beijing())
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// Milliseconds since the epoch of a Beijing date and time.
pub fn beijing_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    use chrono::TimeZone;
    beijing()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .map_or(0, |t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uscis_pass_both_checks() {
        let counties = counties().unwrap();
        let mut g = Gen::new(7);
        for i in 0..500 {
            let county = g.pick(&counties).clone();
            let org = if i % 2 == 0 { g.org8_new() } else { g.org8_public() };
            let u = g.usci(if i % 3 == 0 { "12" } else { "91" }, &county, &org);
            assert_eq!(usci::verify(&u), Ok(()), "{u}");
            assert_eq!(&u[2..8], county.code);
            assert_eq!(u.chars().nth(16), Some(org_check(&u[8..16])), "{u}");
        }
    }

    #[test]
    fn org_check_matches_known_codes() {
        // Organisation codes inside USCIs of the schema examples.
        for u in ["91350211MA31BN8C5A", "52350212MAD4H3J9XL", "91350206MA2XK7P16K"] {
            assert_eq!(org_check(&u[8..16]), u.chars().nth(16).unwrap(), "{u}");
        }
    }

    #[test]
    fn counties_know_their_city() {
        let all = counties().unwrap();
        let jimei = all.iter().find(|c| c.code == "350211").unwrap();
        assert_eq!((jimei.city.as_str(), jimei.plate.as_str(), jimei.stem()), ("厦门市", "闽D", "集美"));
        assert_eq!((jimei.city_short(), jimei.area_code()), ("厦", "0592"));
        assert!(all.iter().all(|c| c.code != "350527" && c.code.starts_with("35")));
    }

    #[test]
    fn same_seed_same_data() {
        let a: Vec<String> = (0..5).map(|_| Gen::new(3).person()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            rfc3339_ms(beijing_ms(2026, 3, 2, 10, 15, 27) + 481),
            "2026-03-02T10:15:27.481+08:00"
        );
    }
}
