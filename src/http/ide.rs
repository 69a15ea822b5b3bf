//! GraphiQL (at `/` and for browsers at `/graphql`) and GraphQL Playground
//! (at `/playground`), pre-filled with the endpoint and an example query.
//! The pages load the IDEs' scripts from public CDNs in the browser.

use axum::response::Html;

/// The query both IDEs open with.
pub const EXAMPLE_QUERY: &str = r#"# Welcome to nexora. Press the play button to run this query.
query TopRated {
  titles(first: 5, orderBy: TOP_RATED) {
    totalCount
    edges {
      cursor
      node {
        id
        name
        kind
        releaseYear
        averageRating
        reviewCount
        reviews(first: 2, orderBy: MOST_LIKED) {
          edges { node { rating body likeCount author { username displayName } } }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"#;

fn js_string(s: &str) -> String {
    // JSON is valid JS; escaping `<` keeps `</script>` out of the page
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('<', "\\u003c")
}

/// The GraphiQL page.
pub async fn graphiql() -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>nexora · GraphiQL</title>
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css" />
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    const url = new URL("/graphql", window.location.href);
    const wsUrl = url.href.replace(/^http/, "ws");
    const fetcher = GraphiQL.createFetcher({{ url: url.href, subscriptionUrl: wsUrl }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{ fetcher, defaultQuery: {query}, defaultEditorToolsVisibility: true }})
    );
  </script>
</body>
</html>"#,
        query = js_string(EXAMPLE_QUERY)
    ))
}

/// The GraphQL Playground page.
pub async fn playground() -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>nexora · GraphQL Playground</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/graphql-playground-react/build/static/css/index.css" />
  <script src="https://cdn.jsdelivr.net/npm/graphql-playground-react/build/static/js/middleware.js"></script>
</head>
<body>
  <div id="root"></div>
  <script>
    window.addEventListener("load", function () {{
      const endpoint = new URL("/graphql", window.location.href).href;
      GraphQLPlayground.init(document.getElementById("root"), {{
        endpoint,
        subscriptionEndpoint: endpoint.replace(/^http/, "ws"),
        tabs: [{{ endpoint, name: "Top rated", query: {query} }}],
      }});
    }});
  </script>
</body>
</html>"#,
        query = js_string(EXAMPLE_QUERY)
    ))
}
