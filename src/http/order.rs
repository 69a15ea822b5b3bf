//! Restores selection order in responses.
//!
//! async-graphql resolves sibling fields concurrently and inserts them in
//! completion order; the GraphQL spec asks for the order of the request
//! (CollectFields). This walks the executed document next to the result and
//! reorders every object's keys. It runs once per executed response (cache
//! hits are stored already ordered).

use async_graphql::{
    Name, Value,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

/// Reorders `data` to follow the selected operation's selection order.
pub fn reorder(doc: &ExecutableDocument, operation: Option<&str>, data: &mut Value) {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => &op.node,
            None => return,
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) => &op.node,
            None => return,
        },
    };
    apply(doc, &[&op.selection_set.node], data);
}

/// Collects response keys in order, with the sub-selections of each key.
fn collect<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    out: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = f.node.response_key();
                let sub = &f.node.selection_set.node;
                match out.iter_mut().find(|(k, _)| *k == &key.node) {
                    Some((_, subs)) => subs.push(sub),
                    None => out.push((&key.node, vec![sub])),
                }
            }
            Selection::InlineFragment(frag) => {
                collect(doc, &frag.node.selection_set.node, out, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(def) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect(doc, &def.node.selection_set.node, out, depth + 1);
                }
            }
        }
    }
}

fn apply(doc: &ExecutableDocument, sets: &[&SelectionSet], value: &mut Value) {
    match value {
        Value::List(items) => {
            for item in items {
                apply(doc, sets, item);
            }
        }
        Value::Object(map) => {
            let mut keys = Vec::new();
            for set in sets {
                collect(doc, set, &mut keys, 0);
            }
            // most objects (synchronous fields) are already in order: then
            // only recurse, without rebuilding the map
            let mut expected = keys
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| map.contains_key(*k));
            let in_order =
                map.len() == keys.len() && map.keys().all(|k| expected.next() == Some(k));
            if in_order {
                for (key, subs) in &keys {
                    if subs.iter().any(|s| !s.items.is_empty())
                        && let Some(v) = map.get_mut(*key)
                    {
                        apply(doc, subs, v);
                    }
                }
                return;
            }
            let mut old = std::mem::take(map);
            for (key, subs) in keys {
                if let Some(mut v) = old.shift_remove(key) {
                    if subs.iter().any(|s| !s.items.is_empty()) {
                        apply(doc, &subs, &mut v);
                    }
                    map.insert(key.clone(), v);
                }
            }
            // anything not matched (should not happen) keeps its place at the end
            map.extend(old);
        }
        _ => {}
    }
}
