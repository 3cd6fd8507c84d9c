// Clients and their closings: where every closing page starts.

import { eachLimited, get } from "../api.js";
import { dataTable, h, status } from "../dom.js";

export async function clientsPage() {
  // The first page of each list (100 items): a tenant or a client may hold many more.
  const page = await get("/clients");
  const clients = page.items;
  const closings = await eachLimited(clients, 4, (client) =>
    get(`/clients/${client.id}/closings`),
  );
  const sections = clients.map((client, index) =>
    h(
      "section",
      { class: "client", "aria-labelledby": `client-${client.id}` },
      h(
        "h2",
        { id: `client-${client.id}` },
        client.name,
        client.tax_id ? h("span", { class: "muted" }, ` · ${client.tax_id}`) : null,
      ),
      dataTable({
        id: `closings-${client.id}`,
        caption: `Closings of ${client.name}`,
        empty: "No closing yet.",
        rows: closings[index].items,
        columns: [
          {
            label: "Period",
            cell: (closing) => h("a", { href: `#/closings/${closing.id}` }, closing.period),
          },
          { label: "Status", cell: (closing) => status(closing.status) },
          { label: "Latest iteration", cell: (closing) => latest(closing.latest_iteration) },
          {
            label: "Snapshot",
            cell: (closing) =>
              closing.snapshot ? `iteration ${closing.snapshot.iteration}` : "none yet",
          },
        ],
      }),
      closings[index].next_cursor
        ? h("p", { class: "muted" }, `The latest ${closings[index].items.length} closings.`)
        : null,
    ),
  );
  return h(
    "section",
    {},
    h("h1", {}, "Clients"),
    page.next_cursor ? h("p", { class: "muted" }, `The first ${clients.length} clients.`) : null,
    clients.length
      ? sections
      : h(
          "p",
          { class: "empty" },
          "This key's tenant has no client yet: create them through the API (POST /api/v1/clients).",
        ),
  );
}

function latest(iteration) {
  return iteration ? h("span", {}, `#${iteration.number} `, status(iteration.status)) : "none";
}
