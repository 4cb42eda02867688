//! An ISO 4217 alphabetic currency code from the real list of currencies in
//! circulation. Fund codes that payment schemes settle in (`BOV`, `CHE`,
//! `USN`…) are accepted; precious metals, SDRs and the testing/no-currency
//! codes (`XAU`, `XDR`, `XTS`, `XXX`…) are not money an order can be paid in.

use std::fmt;

use serde::{Serialize, Serializer};

use super::{FieldError, deserialize_via_parse};

const FIELD: &str = "currency";

/// (code, minor units) as published by the ISO 4217 maintenance agency.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2),
    ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2),
    ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2),
    ("COU", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0), ("DKK", 2),
    ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2), ("FJD", 2),
    ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2), ("GNF", 0),
    ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2), ("IDR", 2),
    ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2), ("JOD", 3),
    ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2), ("KRW", 0),
    ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2), ("LRD", 2),
    ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2), ("MMK", 2),
    ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2), ("MXN", 2),
    ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2), ("NOK", 2),
    ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2), ("PHP", 2),
    ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2), ("RUB", 2),
    ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2), ("SGD", 2),
    ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2),
    ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3), ("TOP", 2),
    ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0), ("USD", 2),
    ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2), ("VES", 2),
    ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2), ("XOF", 0),
    ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, FieldError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                FIELD,
                format!("must be a 3-letter upper-case ISO 4217 code, got {code:?}"),
            ));
        }
        // Sorted (a test keeps it so): 8 comparisons where a scan made
        // up to 170, on every order.
        CURRENCIES
            .binary_search_by(|(known, _)| (*known).cmp(code))
            .ok()
            .map(|at| CURRENCIES[at])
            .map(|(code, minor_units)| Self { code, minor_units })
            .ok_or_else(|| {
                FieldError::new(FIELD, format!("{code} is not an ISO 4217 currency code"))
            })
    }

    /// Every code accepted, for the OpenAPI description.
    pub(crate) fn codes() -> Vec<&'static str> {
        CURRENCIES.iter().map(|(code, _)| *code).collect()
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Decimal places an amount in this currency may have (JPY has none).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

deserialize_via_parse!(Currency, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_codes() {
        assert_eq!(Currency::parse("USD").unwrap().code(), "USD");
        assert_eq!(Currency::parse("JPY").unwrap().minor_units(), 0);
        assert_eq!(Currency::parse("EUR").unwrap().minor_units(), 2);
    }

    #[test]
    fn refuses_wrong_shape_and_unknown_codes() {
        for (code, why) in [
            ("usd", "upper-case"),
            ("US", "3-letter"),
            ("USDD", "3-letter"),
            ("", "3-letter"),
            ("U$D", "3-letter"),
            ("ABC", "not an ISO 4217"),
            ("XTS", "not an ISO 4217"),
        ] {
            let err = Currency::parse(code).unwrap_err();
            assert!(err.message.contains(why), "{code}: {}", err.message);
        }
    }

    #[test]
    fn list_is_sorted_and_unique() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
