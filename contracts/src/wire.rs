//! The version envelope of wire messages: `{"v":"1", ...the message's fields}`.
//!
//! A new layout is a new version, so a router in a rolling deploy still reads what an older
//! producer wrote. Every hookbus writer puts `"v"` first, and the reader relies on it: the
//! version is read, then the rest of the object goes straight into the message's type. A
//! serde internally tagged enum would do the same for any key order, but only by buffering
//! the whole message into an intermediate tree first, on the hot path of every hop.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The only version so far.
const V1: &str = "1";

/// Serializes `message` as `{"v":"1", ...its fields}`.
pub fn encode_v1<T: Serialize>(message: &T) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(tag = "v")]
    enum Versioned<'a, T> {
        #[serde(rename = "1")]
        V1(&'a T),
    }
    serde_json::to_vec(&Versioned::V1(message)).expect("wire messages always serialize")
}

/// Reads a message written by [`encode_v1`].
pub fn decode_v1<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let message = de.deserialize_map(VersionFirst(PhantomData))?;
    de.end()?;
    Ok(message)
}

struct VersionFirst<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for VersionFirst<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a hookbus message, {"v":"1",...}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key::<Cow<'de, str>>()?.as_deref() {
            Some("v") => {}
            _ => return Err(de::Error::custom(r#"a message must start with "v""#)),
        }
        let version: Cow<'de, str> = map.next_value()?;
        if version != V1 {
            return Err(de::Error::custom(format_args!(
                "unsupported message version {version:?}"
            )));
        }
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        a: u32,
        b: String,
    }

    #[test]
    fn round_trips_with_the_version_first() {
        let msg = Msg {
            a: 1,
            b: "x".into(),
        };
        let bytes = encode_v1(&msg);
        assert_eq!(bytes, br#"{"v":"1","a":1,"b":"x"}"#);
        assert_eq!(decode_v1::<Msg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn refuses_other_versions_a_late_version_and_trailing_bytes() {
        let err = |bytes: &[u8]| decode_v1::<Msg>(bytes).unwrap_err().to_string();
        assert!(err(br#"{"v":"2","a":1,"b":"x"}"#).contains("unsupported message version \"2\""));
        assert!(err(br#"{"a":1,"v":"1","b":"x"}"#).contains("start with \"v\""));
        assert!(err(br#"{"v":"1","a":1}"#).contains("missing field `b`"));
        assert!(err(br#"{"v":"1","a":1,"b":"x"} {}"#).contains("trailing"));
        assert!(err(b"[1]").contains("expected a hookbus message"));
    }
}
