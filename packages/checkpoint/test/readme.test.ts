import { Readable } from "node:stream";
import { expect, it } from "vitest";
import {
  decodeWithMigrations,
  msgpackSerializer,
  NotSerializableError,
  readEnvelopeStream,
  registerClass,
  writeEnvelope,
  writeEnvelopeStream,
} from "../src/index.js";

// The README's example, run as written (with an in-memory transport).
class Order {
  constructor(
    public id: number,
    public customer: Customer,
    public lines: Map<string, bigint>,
  ) {}
  total(): bigint {
    let t = 0n;
    for (const v of this.lines.values()) t += v;
    return t;
  }
}
class Customer {
  constructor(
    public name: string,
    public since: Date,
  ) {}
}
registerClass(Order);
registerClass(Customer, "Customer");

it("works as the README says", async () => {
  const ann = new Customer("Ann", new Date());
  const state = {
    customers: [ann],
    orders: new Map([[1, new Order(1, ann, new Map([["sku-1", 250n]]))]]),
    seen: new Set<string>(),
  };

  const bytes = writeEnvelope(state, { serializer: msgpackSerializer, appVersion: 3 });
  const { value, appVersion } = decodeWithMigrations(bytes, { currentVersion: 3, migrations: {} });
  const restored = value as typeof state;
  expect(appVersion).toBe(3);
  expect(restored.orders.get(1)!.total()).toBe(250n);
  expect(restored.orders.get(1)!.customer).toBe(restored.customers[0]);
  expect(restored.customers[0]).toBeInstanceOf(Customer);

  const stream = writeEnvelopeStream(state, { appVersion: 3 });
  const sent: Uint8Array[] = [];
  for (const chunk of stream) sent.push(chunk);
  expect(BigInt(Buffer.concat(sent).length)).toBe(stream.byteLength);
  const back = await readEnvelopeStream(Readable.from(sent));
  expect((back.value as typeof state).orders.get(1)!.total()).toBe(250n);
});

it("prints the README's error messages", () => {
  class Unknown {}
  const orders = [{}, {}, {}, { customer: new Unknown() }];
  expect(() => msgpackSerializer.encode({ orders })).toThrow(
    "state.orders[3].customer: cannot serialize instance of class Unknown; register the class with registerClass(Unknown)",
  );
  const handlers = new Map([["tick", function onTick() {}]]);
  expect(() => msgpackSerializer.encode({ handlers })).toThrow(NotSerializableError);
  expect(() => msgpackSerializer.encode({ handlers })).toThrow(
    'state.handlers.get("tick"): cannot serialize function onTick; functions cannot be checkpointed; keep behaviour in methods of a registered class',
  );
});
