//! `google.protobuf.Struct` <-> JSON, for a Send's `data`: the wire carries a Struct, the
//! domain and the store only the JSON object (stored as its compact text).

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Number, Value as Json};

use crate::domain::Data;

/// The JSON object a Struct stands for. Not every Struct has one: a number that is NaN or
/// infinite, or a value with no kind set, is refused with the reason (JSON has no way to
/// write either, and storing a stand-in would return something the sender did not send).
pub fn to_json(object: Struct) -> Result<Data, String> {
    object
        .fields
        .into_iter()
        .map(|(key, value)| Ok((key, value_to_json(value)?)))
        .collect()
}

fn value_to_json(value: Value) -> Result<Json, String> {
    Ok(match value.kind {
        None => return Err("every value needs a kind (null is null_value)".into()),
        Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| format!("numbers must be finite; JSON cannot hold {n}"))?,
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .map(value_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(object)) => Json::Object(to_json(object)?),
    })
}

/// The Struct of stored JSON text. The store only holds what [`to_json`] made, so text that
/// is not a JSON object means the row was changed behind the service's back: it is logged and
/// the notification goes out without its data rather than failing a whole List or stream.
pub fn from_json_text(text: &str) -> Option<Struct> {
    match serde_json::from_str::<Data>(text) {
        Ok(object) => Some(to_struct(object)),
        Err(err) => {
            tracing::error!(error = %err, "stored notification data is not a JSON object");
            None
        }
    }
}

fn to_struct(object: Data) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(key, value)| (key, json_to_value(value)))
            .collect(),
    }
}

fn json_to_value(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        // Every number stored came from an f64 (`to_json`), so it has one.
        Json::Number(n) => n.as_f64().map_or(Kind::NullValue(0), Kind::NumberValue),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(values) => Kind::ListValue(ListValue {
            values: values.into_iter().map(json_to_value).collect(),
        }),
        Json::Object(object) => Kind::StructValue(to_struct(object)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(kind: Kind) -> Value {
        Value { kind: Some(kind) }
    }

    fn object(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn every_kind_round_trips_through_compact_json() {
        let nested = object(vec![
            ("n", value(Kind::NullValue(0))),
            ("b", value(Kind::BoolValue(true))),
            ("x", value(Kind::NumberValue(-1.5))),
            ("i", value(Kind::NumberValue(42.0))),
            ("s", value(Kind::StringValue("é \"q\"".into()))),
            (
                "l",
                value(Kind::ListValue(ListValue {
                    values: vec![
                        value(Kind::NumberValue(1.0)),
                        value(Kind::StringValue("two".into())),
                    ],
                })),
            ),
        ]);
        let original = object(vec![("run", value(Kind::StructValue(nested)))]);
        let json = to_json(original.clone()).expect("representable");
        let text = serde_json::Value::Object(json).to_string();
        assert_eq!(
            text,
            r#"{"run":{"b":true,"i":42.0,"l":[1.0,"two"],"n":null,"s":"é \"q\"","x":-1.5}}"#
        );
        assert_eq!(from_json_text(&text), Some(original));
    }

    #[test]
    fn what_json_cannot_hold_is_refused() {
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let deep = object(vec![(
                "l",
                value(Kind::ListValue(ListValue {
                    values: vec![value(Kind::NumberValue(n))],
                })),
            )]);
            assert!(to_json(deep).is_err(), "{n}");
        }
        assert!(to_json(object(vec![("k", Value { kind: None })])).is_err());
    }

    #[test]
    fn text_that_is_not_an_object_gives_no_data() {
        for text in ["", "[1]", "3", "{", "null"] {
            assert_eq!(from_json_text(text), None, "{text}");
        }
    }
}
