import pg from 'pg';
const url = 'postgres://postgres@127.0.0.1/flotilla_cp10k';
const tables = ['users','contracts','audit_log','invoices','products','roles','user_roles','migrations'];
async function block(c, from, to) {
  const t = performance.now();
  for (let i = from; i < to; i++) await c.query(tables.map(x => `SELECT count(*) FROM tenant_${i}.${x}`).join(';'));
  return (performance.now() - t) / (to - from);
}
const one = new pg.Client({ connectionString: url }); await one.connect();
const rows = [];
for (let b = 0; b < 8; b++) {
  const from = 1 + b * 500, to = from + 500;
  const long = await block(one, from, to);
  const fresh = new pg.Client({ connectionString: url }); await fresh.connect();
  const f = await block(fresh, from + 4000, to + 4000 > 10000 ? 10000 : to + 4000);
  await fresh.end();
  const mem = (await one.query(`SELECT sum(total_bytes)::bigint AS b FROM pg_backend_memory_contexts`)).rows[0].b;
  console.log(`block ${b}: long-lived ${long.toFixed(2)} ms/tenant (backend memory ${(mem/1048576).toFixed(0)} MB), fresh ${f.toFixed(2)}`);
}
await one.end();
