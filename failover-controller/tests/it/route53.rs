//! Placeholder: Route53 against moto lives here.
