//! National numbering plans, compact: for each region its country calling
//! code, its trunk prefix and, for the national significant number (NSN), the
//! leading digits and lengths that fixed and mobile lines use, distilled from
//! the ITU-T E.164 plans as libphonenumber's metadata describes them. Enough to
//! tell a real phone number from a digit run of the same shape, at a table
//! look-up per candidate instead of a regular-expression engine.

/// One region's plan.
#[derive(Debug)]
pub struct Plan {
    /// ISO 3166 alpha-2 code, as written in `config.phone_regions`.
    pub region: &'static str,
    /// Country calling code.
    pub cc: u16,
    /// Trunk prefix dialled before the NSN at home: `""` none, `"0"`, `"8"`,
    /// `"06"`; a trailing `?` makes it optional (written with or without).
    pub trunk: &'static str,
    /// `(leading digits, shortest, longest NSN)`: leading digits are a
    /// `|`-separated list of prefixes where `[2-9]` or `[146]` stand for one
    /// digit.
    pub ranges: &'static [(&'static str, u8, u8)],
}

const fn plan(
    region: &'static str,
    cc: u16,
    trunk: &'static str,
    ranges: &'static [(&'static str, u8, u8)],
) -> Plan {
    Plan {
        region,
        cc,
        trunk,
        ranges,
    }
}

/// The regions known, in the order `config.phone_regions` indexes them
/// (at most 64).
pub const PLANS: &[Plan] = &[
    plan("US", 1, "1?", &[("[2-9][0-9][0-9][2-9]", 10, 10)]),
    plan("CA", 1, "1?", &[("[2-9][0-9][0-9][2-9]", 10, 10)]),
    plan(
        "GB",
        44,
        "0",
        &[("[1235689]", 9, 10), ("7[1-57-9]", 10, 10)],
    ),
    plan("IE", 353, "0", &[("[1-9]", 7, 9), ("8[3-9]", 9, 9)]),
    plan("FR", 33, "0", &[("[1-9]", 9, 9)]),
    plan("BE", 32, "0", &[("[1-9]", 8, 8), ("4[5-9]", 9, 9)]),
    plan("NL", 31, "0", &[("[1-9]", 9, 9)]),
    plan("LU", 352, "", &[("[2-9]", 6, 11), ("6[269]1", 9, 9)]),
    plan(
        "DE",
        49,
        "0",
        &[("[2-9]", 7, 11), ("1[5-7]", 10, 11), ("1[89]", 7, 11)],
    ),
    plan("AT", 43, "0", &[("[1-9]", 7, 12)]),
    plan("CH", 41, "0", &[("[2-9]", 9, 9)]),
    plan("IT", 39, "", &[("0", 6, 11), ("3", 9, 10)]),
    plan("ES", 34, "", &[("[6-9]", 9, 9)]),
    plan("PT", 351, "", &[("[29]", 9, 9)]),
    plan("DK", 45, "", &[("[2-9]", 8, 8)]),
    plan("NO", 47, "", &[("[2-9]", 8, 8)]),
    plan("SE", 46, "0", &[("[1-9]", 7, 9)]),
    plan("FI", 358, "0", &[("[1-9]", 6, 10)]),
    plan("PL", 48, "", &[("[1-9]", 9, 9)]),
    plan("CZ", 420, "", &[("[2-9]", 9, 9)]),
    plan("HU", 36, "06", &[("[1-9]", 8, 9)]),
    plan("RO", 40, "0", &[("[237]", 9, 9)]),
    plan("GR", 30, "", &[("2|69", 10, 10)]),
    plan("TR", 90, "0", &[("[2-58]", 10, 10)]),
    plan("UA", 380, "0", &[("[3-9]", 9, 9)]),
    plan("RU", 7, "8", &[("[3489]", 10, 10)]),
    plan("LT", 370, "8", &[("[3-9]", 8, 8)]),
    plan("IL", 972, "0", &[("[2-489]", 8, 8), ("5|7", 9, 9)]),
    plan("SA", 966, "0", &[("1", 8, 8), ("5", 9, 9)]),
    plan("AE", 971, "0", &[("[2-4679]", 8, 8), ("5", 9, 9)]),
    plan("EG", 20, "0", &[("[2-9]", 8, 9), ("1", 10, 10)]),
    plan("ZA", 27, "0", &[("[1-8]", 9, 9)]),
    plan("NG", 234, "0", &[("[1-9]", 8, 8), ("[789]", 10, 10)]),
    plan("KE", 254, "0", &[("[1-7]", 9, 9)]),
    plan("IN", 91, "0", &[("[1-9]", 10, 10)]),
    plan("PK", 92, "0", &[("[2-9]", 9, 10), ("3", 10, 10)]),
    plan(
        "CN",
        86,
        "0",
        &[("1[3-9]", 11, 11), ("10|2", 10, 10), ("[3-9]", 10, 11)],
    ),
    plan("JP", 81, "0", &[("[1-9]", 9, 9), ("[5789]0", 10, 10)]),
    plan("KR", 82, "0", &[("[2-6]", 8, 10), ("1", 9, 10)]),
    plan("ID", 62, "0", &[("[2-9]", 8, 11), ("8", 9, 12)]),
    plan("PH", 63, "0", &[("[2-8]", 8, 10), ("9", 10, 10)]),
    plan("MY", 60, "0", &[("[3-9]", 8, 9), ("1", 9, 10)]),
    plan("SG", 65, "", &[("[689]", 8, 8)]),
    plan("TH", 66, "0", &[("[2-57]", 8, 8), ("[689]", 9, 9)]),
    plan("VN", 84, "0", &[("[2-9]", 9, 10)]),
    plan("AU", 61, "0", &[("[2-478]", 9, 9)]),
    plan("NZ", 64, "0", &[("[3-9]", 8, 8), ("2", 8, 10)]),
    plan(
        "BR",
        55,
        "0?",
        &[("[1-9][1-9][2-5]", 10, 10), ("[1-9][1-9]9", 11, 11)],
    ),
    plan("MX", 52, "", &[("[1-9]", 10, 10)]),
    plan("AR", 54, "0?", &[("[1-9]", 10, 10), ("9[1-9]", 11, 11)]),
    plan("CO", 57, "", &[("[36]", 10, 10)]),
    plan("CL", 56, "", &[("[2-9]", 9, 9)]),
    plan("PE", 51, "0?", &[("9", 9, 9), ("[1-8]", 8, 9)]),
];

/// A set of regions of [`PLANS`], as a bit per index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions(u64);

impl Regions {
    /// Every region of the table.
    pub const ALL: Regions = Regions(if PLANS.len() == 64 {
        u64::MAX
    } else {
        (1 << PLANS.len()) - 1
    });

    /// The regions named by their ISO codes (case-insensitive); the first
    /// unknown code is returned as the error.
    pub fn from_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Result<Regions, &'a str> {
        let mut bits = 0;
        for code in codes {
            let index = PLANS
                .iter()
                .position(|plan| plan.region.eq_ignore_ascii_case(code))
                .ok_or(code)?;
            bits |= 1 << index;
        }
        Ok(Regions(bits))
    }

    /// True when the two sets share a region.
    pub fn intersects(self, other: Regions) -> bool {
        self.0 & other.0 != 0
    }

    fn plans(self) -> impl Iterator<Item = &'static Plan> {
        PLANS
            .iter()
            .enumerate()
            .filter(move |(index, _)| self.0 & (1 << index) != 0)
            .map(|(_, plan)| plan)
    }
}

/// The ISO codes of every known region, for error messages and docs.
pub fn region_codes() -> String {
    PLANS
        .iter()
        .map(|plan| plan.region)
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `digits` starts with one of the `|`-separated prefixes of `pattern`.
fn leads_with(pattern: &str, digits: &[u8]) -> bool {
    pattern.split('|').any(|prefix| {
        let prefix = prefix.as_bytes();
        let mut at = 0;
        let mut index = 0;
        while index < prefix.len() {
            let Some(&digit) = digits.get(at) else {
                return false;
            };
            if prefix[index] == b'[' {
                let close = index
                    + prefix[index..]
                        .iter()
                        .position(|&byte| byte == b']')
                        .unwrap_or(prefix.len() - index - 1);
                let class = &prefix[index + 1..close];
                let mut matched = false;
                let mut item = 0;
                while item < class.len() {
                    if item + 2 < class.len() && class[item + 1] == b'-' {
                        matched |= (class[item]..=class[item + 2]).contains(&digit);
                        item += 3;
                    } else {
                        matched |= class[item] == digit;
                        item += 1;
                    }
                }
                if !matched {
                    return false;
                }
                index = close + 1;
            } else {
                if prefix[index] != digit {
                    return false;
                }
                index += 1;
            }
            at += 1;
        }
        true
    })
}

/// True when `nsn` is a national significant number of `plan`.
fn fits(plan: &Plan, nsn: &[u8]) -> bool {
    plan.ranges.iter().any(|&(lead, min, max)| {
        (usize::from(min)..=usize::from(max)).contains(&nsn.len()) && leads_with(lead, nsn)
    })
}

/// How a national number was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum National {
    /// With the region's trunk prefix (`020 7946 0958`, `1-800-555-0199`).
    Trunk,
    /// Without one, in a region that dials none (`699 956 915` in Spain,
    /// `202 555 0143` in North America).
    Bare,
}

/// Whether `digits`, written in national form, is a number of one of `regions`.
pub fn national(digits: &[u8], regions: Regions) -> Option<National> {
    let mut found = None;
    for plan in regions.plans() {
        let (trunk, optional) = match plan.trunk.strip_suffix('?') {
            Some(trunk) => (trunk, true),
            None => (plan.trunk, false),
        };
        if !trunk.is_empty()
            && let Some(nsn) = digits.strip_prefix(trunk.as_bytes())
            && fits(plan, nsn)
        {
            return Some(National::Trunk);
        }
        if (trunk.is_empty() || optional) && fits(plan, digits) {
            found = Some(National::Bare);
        }
    }
    found
}

/// Length of the country calling code `digits` starts with, by the E.164
/// assignment: `1` and `7` alone, the assigned two-digit codes, else three
/// digits in the zones that use them.
fn cc_len(digits: &[u8]) -> Option<usize> {
    const TWO: &[u8] = &[
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55,
        56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    const THREE: &[u8] = &[
        21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 80, 85, 87, 88, 96, 97, 99,
    ];
    match digits {
        [b'1' | b'7', ..] => Some(1),
        [a, b, rest @ ..] => {
            let two = (a - b'0') * 10 + (b - b'0');
            if TWO.contains(&two) {
                Some(2)
            } else if THREE.contains(&two) && !rest.is_empty() {
                Some(3)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether `digits` (after `+` or `00`, without a `(0)`) is an international
/// number: a country code assigned in E.164 followed by an NSN that fits the
/// country's plan when the table has it (whatever `config.phone_regions`
/// says), else 4 to 13 digits, 15 in all at most.
pub fn international(digits: &[u8]) -> bool {
    if digits.len() > 15 {
        return false;
    }
    let Some(len) = cc_len(digits) else {
        return false;
    };
    let cc = digits[..len]
        .iter()
        .fold(0u16, |cc, &digit| cc * 10 + u16::from(digit - b'0'));
    let nsn = &digits[len..];
    let mut known = false;
    for plan in PLANS.iter().filter(|plan| plan.cc == cc) {
        known = true;
        if fits(plan, nsn) {
            return true;
        }
    }
    !known && (4..=13).contains(&nsn.len())
}
