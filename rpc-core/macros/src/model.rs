//! What `#[handler]` reads from its input: the handler name, the type and its procedures,
//! with every misuse turned into a compile error that says what to change.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute as SynAttribute, FnArg, GenericArgument, Ident, ImplItem, ItemImpl, LitStr, Pat,
    PathArguments, ReturnType, Type, Visibility,
};

/// The attribute's arguments: `#[handler]` or `#[handler(name = "fibonacci_generator")]`.
pub struct Attribute {
    pub name: Option<LitStr>,
}

impl Attribute {
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let mut name = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else {
                Err(meta.error("unknown #[handler] argument; the only one is `name = \"...\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(Self { name })
    }
}

/// The annotated `impl` block, understood.
pub struct HandlerImpl {
    pub item: ItemImpl,
    pub self_ident: Ident,
    pub handler_name: String,
    pub procedures: Vec<ProcedureFn>,
}

/// One `pub fn` of the block.
pub struct ProcedureFn {
    pub ident: Ident,
    pub method: String,
    pub docs: Vec<SynAttribute>,
    /// Whether it takes `&self` (else it is an associated function).
    pub takes_self: bool,
    /// Its parameters in order, the wire's and the cancellation.
    pub inputs: Vec<Input>,
    pub is_async: bool,
    /// What a caller receives: for a batch procedure, an element of the returned `Vec`.
    pub output: Output,
    /// Set for a batch procedure; `inputs` then holds the one argument of a single call.
    pub batch: Option<Batch>,
}

/// `#[batch(max = N)]` or `#[batch(max = N, param = "name")]` on a procedure.
pub struct BatchAttribute {
    pub max: syn::Expr,
    pub param: Option<LitStr>,
}

/// A batch procedure: `fn(&self, items: Vec<T>) -> Vec<R>`, called one `T` at a time.
pub struct Batch {
    pub max: syn::Expr,
    /// The returned `Vec`'s element type.
    pub output_item: Type,
}

impl Batch {
    /// Removes `#[batch(...)]` from `function`'s attributes (it is ours, not the compiler's)
    /// and reads it.
    fn take_attribute(function: &mut syn::ImplItemFn) -> syn::Result<Option<BatchAttribute>> {
        let Some(position) = function
            .attrs
            .iter()
            .position(|a| a.path().is_ident("batch"))
        else {
            return Ok(None);
        };
        let attribute = function.attrs.remove(position);
        let mut max = None;
        let mut param = None;
        attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("max") {
                max = Some(meta.value()?.parse::<syn::Expr>()?);
                Ok(())
            } else if meta.path.is_ident("param") {
                param = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else {
                Err(meta
                    .error("unknown #[batch] argument; they are `max = N` and `param = \"name\"`"))
            }
        })?;
        let max = max.ok_or_else(|| {
            syn::Error::new(
                attribute.span(),
                "#[batch] needs `max = N`: the most calls run at once",
            )
        })?;
        Ok(Some(BatchAttribute { max, param }))
    }
}

impl ProcedureFn {
    /// Checks the shape of a batch procedure and describes it as callers see it: one
    /// argument, one result.
    fn make_batch(&mut self, attribute: BatchAttribute, sig: &syn::Signature) -> syn::Result<()> {
        let shape = "a batch procedure takes one `Vec<T>` (and `&self`) and returns a `Vec` of results, one per element: `pub fn f(&self, items: Vec<T>) -> Vec<Result<R, E>>`";
        if self.is_async {
            return Err(syn::Error::new(
                sig.asyncness.span(),
                "a batch procedure cannot be `async`: it runs on a worker thread",
            ));
        }
        let [Input::Wire(param)] = self.inputs.as_slice() else {
            return Err(syn::Error::new(sig.inputs.span(), shape));
        };
        let (Some(item), Some(output_item)) =
            (vec_element(&param.ty), vec_element(self.output.ok_type()))
        else {
            return Err(syn::Error::new(sig.span(), shape));
        };
        if !matches!(self.output, Output::Value(_)) {
            return Err(syn::Error::new(sig.output.span(), shape));
        }
        let name = match &attribute.param {
            Some(name) => name.value(),
            None => param.name.clone(),
        };
        let ident = syn::parse_str::<Ident>(&name).map_err(|_| {
            syn::Error::new(attribute.param.span(), "`param` must be a plain identifier")
        })?;
        self.inputs = vec![Input::Wire(Box::new(Param {
            ident,
            name,
            ty: item,
        }))];
        self.output = Output::parse(&ReturnType::Type(
            Default::default(),
            Box::new(output_item.clone()),
        ));
        self.batch = Some(Batch {
            max: attribute.max,
            output_item,
        });
        Ok(())
    }
}

/// `T` when `ty` is `Vec<T>`.
fn vec_element(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(element) => Some(element.clone()),
        _ => None,
    }
}

/// One parameter of a procedure.
pub enum Input {
    /// An argument that travels on the wire.
    Wire(Box<Param>),
    /// The call's `rpc_core::Cancellation`, given by the registry, not by the caller.
    Cancellation,
}

impl ProcedureFn {
    /// The parameters that travel on the wire, in order.
    pub fn params(&self) -> impl Iterator<Item = &Param> + Clone {
        self.inputs.iter().filter_map(|input| match input {
            Input::Wire(param) => Some(&**param),
            Input::Cancellation => None,
        })
    }
}

pub struct Param {
    pub ident: Ident,
    pub name: String,
    pub ty: Type,
}

/// What a procedure returns: a plain value, or a `Result` whose error becomes the reply's.
pub enum Output {
    Value(Type),
    Fallible { ok: Type },
}

impl Output {
    /// The type a caller receives on success.
    pub fn ok_type(&self) -> &Type {
        match self {
            Output::Value(ty) | Output::Fallible { ok: ty } => ty,
        }
    }
}

impl HandlerImpl {
    pub fn parse(attribute: Attribute, tokens: TokenStream) -> syn::Result<Self> {
        let mut item: ItemImpl = syn::parse2(tokens)?;
        if let Some((_, path, _)) = &item.trait_ {
            return Err(syn::Error::new(
                path.span(),
                "#[handler] goes on an inherent `impl Type { ... }` block, not a trait impl",
            ));
        }
        if !item.generics.params.is_empty() {
            return Err(syn::Error::new(
                item.generics.span(),
                "#[handler] cannot be used on a generic impl: each procedure needs concrete types on the wire",
            ));
        }
        let self_ident = match &*item.self_ty {
            Type::Path(path) if path.qself.is_none() => path
                .path
                .segments
                .last()
                .map(|segment| segment.ident.clone()),
            _ => None,
        }
        .ok_or_else(|| {
            syn::Error::new(
                item.self_ty.span(),
                "#[handler] needs a named type: `impl MyHandler { ... }`",
            )
        })?;
        let handler_name = match &attribute.name {
            Some(name) => name.value(),
            None => snake_case(&self_ident.unraw().to_string()),
        };
        let mut procedures = Vec::new();
        for member in &mut item.items {
            if let ImplItem::Fn(function) = member {
                let batch = Batch::take_attribute(function)?;
                if matches!(function.vis, Visibility::Public(_)) {
                    procedures.push(ProcedureFn::parse(function, batch)?);
                } else if let Some(batch) = batch {
                    return Err(syn::Error::new(
                        batch.max.span(),
                        "#[batch] goes on a `pub fn`: only those are procedures",
                    ));
                }
            }
        }
        if procedures.is_empty() {
            return Err(syn::Error::new(
                item.self_ty.span(),
                "#[handler] found no `pub fn` in this impl block: each `pub fn` becomes a procedure",
            ));
        }
        Ok(Self {
            item,
            self_ident,
            handler_name,
            procedures,
        })
    }
}

impl ProcedureFn {
    fn parse(function: &syn::ImplItemFn, batch: Option<BatchAttribute>) -> syn::Result<Self> {
        let sig = &function.sig;
        let takes_self = match sig.receiver() {
            None => false,
            Some(receiver) if receiver.reference.is_some() && receiver.colon_token.is_none() => {
                if receiver.mutability.is_some() {
                    return Err(syn::Error::new(
                        receiver.span(),
                        "a procedure cannot take `&mut self`: calls run at the same time on several workers; take `&self` and keep mutable state behind interior mutability (an atomic, a `Mutex`, an `RwLock`)",
                    ));
                }
                true
            }
            Some(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "a procedure takes `&self` or no receiver: the registry keeps one handler and lends it to every call",
                ));
            }
        };
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            return Err(syn::Error::new(
                sig.generics.span(),
                "a procedure cannot be generic: its parameters are decoded from the wire, so they need concrete types",
            ));
        }
        if let Some(unsafety) = &sig.unsafety {
            return Err(syn::Error::new(
                unsafety.span(),
                "a procedure cannot be `unsafe fn`",
            ));
        }
        let inputs = sig
            .inputs
            .iter()
            .filter(|input| matches!(input, FnArg::Typed(_)))
            .map(Input::parse)
            .collect::<syn::Result<Vec<_>>>()?;
        let docs = function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
            .cloned()
            .collect();
        let mut procedure = Self {
            ident: sig.ident.clone(),
            method: sig.ident.unraw().to_string(),
            docs,
            takes_self,
            inputs,
            is_async: sig.asyncness.is_some(),
            output: Output::parse(&sig.output),
            batch: None,
        };
        if let Some(attribute) = batch {
            procedure.make_batch(attribute, sig)?;
        }
        Ok(procedure)
    }
}

impl Input {
    fn parse(input: &FnArg) -> syn::Result<Self> {
        if let FnArg::Typed(typed) = input {
            if is_cancellation(&typed.ty) {
                return Ok(Input::Cancellation);
            }
        }
        Param::parse(input).map(|param| Input::Wire(Box::new(param)))
    }
}

/// Whether `ty` is `Cancellation` (by its last path segment: `rpc_core::Cancellation` too).
fn is_cancellation(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "Cancellation" && s.arguments.is_empty()))
}

impl Param {
    fn parse(input: &FnArg) -> syn::Result<Self> {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(
                input.span(),
                "a procedure cannot take `self`",
            ));
        };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new(
                typed.pat.span(),
                "a procedure parameter needs a plain name: it is the key of the JSON encoding",
            ));
        };
        if let Type::Reference(reference) = &*typed.ty {
            return Err(syn::Error::new(
                reference.span(),
                "a procedure parameter must be an owned type (`String`, not `&str`): it is decoded from the wire",
            ));
        }
        if matches!(&*typed.ty, Type::ImplTrait(_)) {
            return Err(syn::Error::new(
                typed.ty.span(),
                "a procedure parameter cannot be `impl Trait`: it needs a concrete type to decode into",
            ));
        }
        Ok(Self {
            ident: pat.ident.clone(),
            name: pat.ident.unraw().to_string(),
            ty: (*typed.ty).clone(),
        })
    }

    /// Whether this parameter is a `String`: as the last one it takes the rest of a text line.
    pub fn is_string(&self) -> bool {
        matches!(&self.ty, Type::Path(path) if path.qself.is_none()
            && path.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_empty()))
    }
}

impl Output {
    fn parse(output: &ReturnType) -> Self {
        let ty = match output {
            ReturnType::Default => return Output::Value(syn::parse_quote!(())),
            ReturnType::Type(_, ty) => &**ty,
        };
        if let Type::Path(path) = ty {
            if let Some(last) = path.path.segments.last() {
                if last.ident == "Result" {
                    if let PathArguments::AngleBracketed(args) = &last.arguments {
                        if let Some(GenericArgument::Type(ok)) = args.args.first() {
                            return Output::Fallible { ok: ok.clone() };
                        }
                    }
                }
            }
        }
        Output::Value(ty.clone())
    }
}

/// `FibonacciGenerator` -> `fibonacci_generator`, `HTTPServer` -> `http_server`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if prev_lower || (prev_upper && next_lower) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn type_names_become_snake_case() {
        assert_eq!(snake_case("FibonacciGenerator"), "fibonacci_generator");
        assert_eq!(snake_case("NeuralAnalyzer"), "neural_analyzer");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("V2Api"), "v2_api");
        assert_eq!(snake_case("echo"), "echo");
    }
}
