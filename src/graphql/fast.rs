//! A leaner way to resolve the objects a page is made of.
//!
//! async-graphql resolves every selected field of an object as a boxed
//! future (about 1.1 KB each for our types) inside a `FuturesUnordered`
//! (an `Arc`ed task per field, atomics on every wake), then gathers the
//! results in completion order. A feed page of 20 reviews with their titles
//! and authors is ~220 such fields. [`Lean`] wraps an object type and
//! resolves its selection with a few allocations per object instead of
//! two per field: the fields' futures, all of one type, polled side by
//! side (`join_all`), results kept in selection order. Each field still
//! runs through the type's own `resolve_field`, so arguments, guards,
//! errors and their paths are the derived code's.
//!
//! Whatever this path does not replicate takes async-graphql's own
//! (`resolve_container`), for the whole object: a schema that may have
//! extensions (they wrap every field; only schemas built with [`NoExtensions`]
//! in their data skip them) and fields carrying custom directives. `@skip`
//! and `@include` are applied to the document before execution starts.

use std::borrow::Cow;

use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult,
    Value,
    indexmap::{IndexMap, map::Entry},
    parser::types::{Field, Selection, SelectionSet},
    registry::Registry,
    resolver_utils::resolve_container,
};

/// An object resolved the lean way; to the schema it is `T` itself (same
/// name, same fields, one registry entry).
#[repr(transparent)]
pub struct Lean<T>(pub T);

impl<T: ContainerType> OutputType for Lean<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        resolve(ctx, &self.0).await
    }
}

/// Schema data saying the schema was built without extensions, so fields
/// need not pass through them. async-graphql does not say so itself.
pub struct NoExtensions;

/// What one selected field becomes.
enum Part<'a> {
    /// Resolved by the type.
    Field(&'a Positioned<Field>),
    /// `__typename`.
    Typename(&'a Positioned<Field>),
}

/// Resolves `root`'s selection like `resolve_container`, without a boxed
/// future or a task per field.
pub async fn resolve<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
) -> ServerResult<Value> {
    let direct = ctx
        .schema_env
        .data
        .contains_key(&std::any::TypeId::of::<NoExtensions>());
    if !direct {
        return resolve_container(ctx, root).await;
    }
    let mut parts = Vec::with_capacity(ctx.item.node.items.len());
    if !collect(ctx, ctx.item, root, &mut parts)? {
        return resolve_container(ctx, root).await;
    }
    let typename = root.introspection_type_name();
    let results = futures::future::join_all(parts.iter().map(|part| async {
        match *part {
            Part::Typename(field) => Ok((
                field.node.response_key().node.clone(),
                Value::String(typename.to_string()),
            )),
            Part::Field(field) => {
                let ctx_field = ctx.with_field(field);
                let value = root.resolve_field(&ctx_field).await?;
                Ok((
                    field.node.response_key().node.clone(),
                    value.unwrap_or_default(),
                ))
            }
        }
    }))
    .await;
    let mut object = IndexMap::with_capacity(results.len());
    for result in results {
        match result {
            Ok((name, value)) => insert_value(&mut object, name, value),
            Err(e) => ctx.add_error(e),
        }
    }
    Ok(if object.is_empty() {
        Value::Null
    } else {
        Value::Object(object)
    })
}

/// Flattens `set` (fragments included) into `parts`; false when a field
/// carries a directive, which only async-graphql's own path applies.
fn collect<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    root: &T,
    parts: &mut Vec<Part<'a>>,
) -> ServerResult<bool> {
    for selection in &set.node.items {
        let (condition, inner) = match &selection.node {
            Selection::Field(field) => {
                if !field.node.directives.is_empty() {
                    return Ok(false);
                }
                parts.push(if field.node.name.node == "__typename" {
                    Part::Typename(field)
                } else {
                    Part::Field(field)
                });
                continue;
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                let Some(fragment) = ctx.query_env.fragments.get(name) else {
                    return Err(ServerError::new(
                        format!(r#"Unknown fragment "{name}"."#),
                        Some(spread.pos),
                    ));
                };
                (
                    Some(&fragment.node.type_condition),
                    &fragment.node.selection_set,
                )
            }
            Selection::InlineFragment(fragment) => (
                fragment.node.type_condition.as_ref(),
                &fragment.node.selection_set,
            ),
        };
        // as `Fields::add_set`: the fragment applies when it names this
        // type, one of its interfaces, or nothing
        let applies = match condition.map(|c| c.node.on.node.as_str()) {
            None => true,
            Some(on) => {
                let own = root.introspection_type_name();
                own == on
                    || T::type_name() == on
                    || ctx
                        .schema_env
                        .registry
                        .implements
                        .get(own.as_ref())
                        .is_some_and(|interfaces| interfaces.contains(on))
            }
        };
        if applies && !collect(ctx, inner, root, parts)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Adds a field's value, merging it into an earlier one of the same
/// response key (the same field selected twice with different subfields),
/// as async-graphql does.
fn insert_value(target: &mut IndexMap<Name, Value>, name: Name, value: Value) {
    // one hash per key: most keys are new
    let prev = match target.entry(name) {
        Entry::Vacant(slot) => {
            slot.insert(value);
            return;
        }
        Entry::Occupied(slot) => slot.into_mut(),
    };
    match (prev, value) {
        (Value::Object(target_map), Value::Object(obj)) => merge(target_map, obj),
        (Value::List(target_list), Value::List(list)) => {
            for (idx, value) in list.into_iter().enumerate() {
                if let (Some(Value::Object(target_map)), Value::Object(obj)) =
                    (target_list.get_mut(idx), value)
                {
                    merge(target_map, obj);
                }
            }
        }
        _ => {}
    }
}

/// Merges every field of `obj` into `target` ([`insert_value`] each).
fn merge(target: &mut IndexMap<Name, Value>, obj: IndexMap<Name, Value>) {
    for (key, value) in obj {
        insert_value(target, key, value);
    }
}
