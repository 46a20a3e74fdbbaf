import { ByteBudget } from "../../agent/src/byteBudget";

describe("ByteBudget", () => {
  it("lets work in while it fits and queues the rest in arrival order", async () => {
    const budget = new ByteBudget(100);
    const order: string[] = [];
    expect(await budget.take(60)).toBe(60);
    const big = budget.take(50).then((n) => order.push(`big:${n}`));
    const small = budget.take(10).then((n) => order.push(`small:${n}`));
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.give(60);
    await Promise.all([big, small]);
    expect(order).toEqual(["big:50", "small:10"]);
  });

  it("a file larger than the whole budget takes all of it and goes alone", async () => {
    const budget = new ByteBudget(100);
    expect(await budget.take(30)).toBe(30);
    let got: number | undefined;
    const huge = budget.take(5_000).then((n) => (got = n));
    await Promise.resolve();
    expect(got).toBeUndefined();
    budget.give(30);
    await huge;
    expect(got).toBe(100);
    let next = false;
    const after = budget.take(1).then(() => (next = true));
    await Promise.resolve();
    expect(next).toBe(false);
    budget.give(100);
    await after;
    expect(next).toBe(true);
  });
});
