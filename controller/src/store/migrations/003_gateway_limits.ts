// The gateway's shared limits (spec §5.3, §6, §14): GCRA rate buckets, per-instance slots
// held as leases, a cross-replica queue of waiters, and one circuit breaker per instance.
// The decisions are PL/pgSQL functions so that a call is admitted (or refused) in one round
// trip, and every replica decides against the same rows and, by default, the same clock.
// Times arrive as epoch milliseconds (`p_now_ms`, null: the database's clock) so that tests
// can drive a clock; timestamps are stored as timestamptz for people reading the tables.
//
// Buckets, slots and waiters are UNLOGGED: a call that writes only them commits without
// waiting for a WAL flush, which otherwise bounds every shared bucket to one call per fsync
// (the row lock is held until the flush). They are soft state: after a crash or a failover
// they start empty, which forgets tokens taken and slots held (briefly permissive), never
// blocks. Breakers stay logged: an open breaker must survive, and they change rarely.
import { sql } from "kysely";
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/** NOTIFY channel: a slot of the instance (the payload) may be free for its queue. */
export const SLOT_CHANNEL = "gateway_slot_free";
/** NOTIFY channel: the instance's (the payload) breaker opened or closed. */
export const BREAKER_CHANNEL = "connector_breaker_changed";

const tables = [
  sql`create unlogged table gateway_rate_buckets (
    key text primary key,
    -- GCRA's theoretical arrival time, epoch ms; numeric so that 1000/rps does not drift.
    tat numeric not null
  )`,
  // Slot rows are reused (numbered per instance, as many as were ever held at once): taking
  // and giving one back are HOT updates, leaving no dead index entries for the next count.
  sql`create unlogged table gateway_slots (
    instance_id text not null,
    n integer not null,
    -- A new id each time the slot is taken, so only its holder gives it back.
    holder uuid,
    -- Free when null or past: a holder that died without releasing it loses it.
    expires_at timestamptz,
    primary key (instance_id, n)
  )`,
  sql`create unlogged table gateway_waiters (
    id uuid primary key default gen_random_uuid(),
    seq bigint generated always as identity,
    instance_id text not null,
    deadline timestamptz not null,
    -- Renewed each time the waiter asks again; a dead replica's waiters lapse.
    expires_at timestamptz not null
  )`,
  sql`create index gateway_waiters_instance on gateway_waiters (instance_id, seq)`,
  sql`create table gateway_breakers (
    instance_id text primary key,
    failures integer not null default 0,
    -- null: closed; in the future: open; in the past: half-open.
    opened_until timestamptz,
    -- Half-open: the single trial call's claim, until it reports or lapses.
    trial_until timestamptz
  )`,
];

const helpers = [
  sql`create function gateway_ts(p_ms numeric) returns timestamptz
  language sql immutable as $$ select to_timestamp((p_ms / 1000)::float8) $$`,
  sql`create function gateway_now_ms(p_now_ms numeric) returns numeric
  language sql volatile as $$ select coalesce(p_now_ms, extract(epoch from clock_timestamp()) * 1000) $$`,
  // Tells the queue of an instance that a slot may be free, only when someone waits there:
  // NOTIFY serialises committing transactions, so the common release stays silent.
  sql`create function gateway_wake(p_instance text, p_now timestamptz) returns void
  language plpgsql as $$
  begin
    if exists (select 1 from gateway_waiters w
                where w.instance_id = p_instance and w.expires_at > p_now) then
      perform pg_notify('gateway_slot_free', p_instance);
    end if;
  end $$`,
  // A slot given back, or a place in the queue given up: either may let the next waiter in.
  sql`create function gateway_free(p_instance text, p_slot integer, p_holder uuid, p_waiter uuid,
                                   p_now_ms numeric) returns void
  language plpgsql as $$
  begin
    if p_holder is not null then
      -- A slot that lapsed and was taken again is not its former holder's to give back.
      update gateway_slots s set holder = null, expires_at = null
       where s.instance_id = p_instance and s.n = p_slot and s.holder = p_holder;
    else
      delete from gateway_waiters w where w.id = p_waiter;
    end if;
    if found then
      perform gateway_wake(p_instance, gateway_ts(gateway_now_ms(p_now_ms)));
    end if;
  end $$`,
];

// One admission decision: the breaker, the rate buckets (GCRA, all or nothing), then a slot
// or a place in the queue. Nothing is written unless the call is admitted, except the
// queue's own rows. A newcomer is refused by the breaker or a bucket before it would queue;
// a waiter is judged by them only when its turn comes.
const admit = sql`
  create function gateway_admit(
    p_instance text,
    p_buckets jsonb,           -- [{key, rps, burst}], distinct keys
    p_max_parallel integer,    -- null: no cap, no slot
    p_queue boolean,           -- backpressure: queue (true) or reject
    p_queue_depth integer,
    p_max_wait_ms bigint,
    p_lease_ms bigint,
    p_waiter uuid,             -- a queued call asking again
    p_waiter_ttl_ms bigint,
    p_breaker_trial_ms bigint, -- null: the breaker is not consulted
    p_now_ms numeric
  ) returns table (outcome text, bucket text, retry_after_ms bigint, slot_id text,
                   waiter_id uuid, waiter_seq bigint, breaker_failures integer, trial boolean)
  language plpgsql as $$
  declare
    v_now numeric;
    v_now_ts timestamptz;
    v_refusal text;
    v_bucket text;
    v_retry numeric;
    v_seq bigint;
    v_slots integer;
    v_lapsed integer;
    v_ahead integer;
    v_waiting integer;
    v_slot text; -- n:holder
    v_phase text;
    v_failures integer;
    v_trial boolean;
    v_opened timestamptz;
    v_shut_until timestamptz;
  begin
    if p_max_parallel is not null then
      -- One decision per instance at a time, across replicas; taken before any bucket lock.
      perform pg_advisory_xact_lock(hashtextextended('gateway_slots/' || p_instance, 0));
    end if;
    -- Bucket rows are created and locked in key order: calls sharing buckets cannot deadlock.
    insert into gateway_rate_buckets (key, tat)
      select b.key, 0 from jsonb_to_recordset(p_buckets) as b(key text) order by b.key
      on conflict (key) do nothing;
    perform 1 from gateway_rate_buckets g
      where g.key in (select b.key from jsonb_to_recordset(p_buckets) as b(key text))
      order by g.key for update;
    -- The clock is read after the locks, so that a call that waited is judged at its turn.
    v_now := gateway_now_ms(p_now_ms);
    v_now_ts := gateway_ts(v_now);

    if p_breaker_trial_ms is not null then
      select x.failures, x.opened_until, greatest(x.opened_until, x.trial_until)
        into v_failures, v_opened, v_shut_until
        from gateway_breakers x where x.instance_id = p_instance;
      v_failures := coalesce(v_failures, 0);
      -- Open, or half-open with the trial taken (closed and a free trial pass).
      if v_shut_until > v_now_ts then
        v_refusal := 'circuit_open';
        v_retry := extract(epoch from v_shut_until - v_now_ts) * 1000;
      end if;
    end if;
    if v_refusal is null then
      -- GCRA, T = 1000/rps: a call conforms when max(tat, now) + T - now <= burst * T. The
      -- excess over that is exactly how long the caller must wait. numeric rounds 1000/rps
      -- (1000/6 upwards): a nanosecond's tolerance keeps a call that is exactly on time.
      select 'rate_limited', r.key, r.over into v_refusal, v_bucket, v_retry
        from (select b.key, greatest(g.tat - v_now, 0) + (1 - b.burst) * 1000 / b.rps as over
                from jsonb_to_recordset(p_buckets) as b(key text, rps numeric, burst integer)
                join gateway_rate_buckets g on g.key = b.key) r
       where r.over > 0.000001
       order by r.over desc limit 1;
    end if;

    if p_max_parallel is not null and p_waiter is not null then
      -- Not found: its place lapsed (its replica stalled); it comes again as a newcomer.
      select w.seq into v_seq from gateway_waiters w where w.id = p_waiter and w.expires_at > v_now_ts;
    end if;

    -- A refused newcomer goes straight to its answer; a refused waiter only at its turn.
    if p_max_parallel is not null and (v_refusal is null or v_seq is not null) then
      select count(*) into v_slots from gateway_slots s
       where s.instance_id = p_instance and s.expires_at > v_now_ts;
      -- First come, first served: a slot goes to a call only when every waiter ahead of it
      -- has one too. Lapsed places count for nothing; their rows go when there are some.
      select count(*) filter (where w.expires_at > v_now_ts and (v_seq is null or w.seq < v_seq)),
             count(*) filter (where w.expires_at > v_now_ts and w.id is distinct from p_waiter),
             count(*) filter (where w.expires_at <= v_now_ts)
        into v_ahead, v_waiting, v_lapsed
        from gateway_waiters w where w.instance_id = p_instance;
      if v_lapsed > 0 then
        delete from gateway_waiters w where w.instance_id = p_instance and w.expires_at <= v_now_ts;
      end if;
      if v_slots + v_ahead >= p_max_parallel then
        if not p_queue then
          outcome := 'busy';
          return next;
          return;
        end if;
        if v_seq is not null then
          update gateway_waiters w
             set expires_at = least(w.deadline, v_now_ts + make_interval(secs => p_waiter_ttl_ms / 1000.0))
           where w.id = p_waiter;
          outcome := 'queued';
          waiter_id := p_waiter;
          waiter_seq := v_seq;
          return next;
          return;
        end if;
        if v_waiting >= p_queue_depth then
          outcome := 'queue_full';
          return next;
          return;
        end if;
        insert into gateway_waiters (instance_id, deadline, expires_at)
          values (p_instance,
                  v_now_ts + make_interval(secs => p_max_wait_ms / 1000.0),
                  v_now_ts + make_interval(secs => least(p_max_wait_ms, p_waiter_ttl_ms) / 1000.0))
          returning id, seq into waiter_id, waiter_seq;
        outcome := 'queued';
        return next;
        return;
      end if;
      -- Its turn: it leaves the queue whether it is admitted or refused now.
      if v_seq is not null then
        delete from gateway_waiters w where w.id = p_waiter;
      end if;
    end if;

    if v_refusal is null and v_opened is not null then
      -- Half-open: claims the trial; 'open' if another caller (e.g. BreakerStore.enter) got it first.
      select e.phase, e.failures, e.trial, e.retry_after_ms
        into v_phase, v_failures, v_trial, v_retry
        from gateway_breaker_enter(p_instance, p_breaker_trial_ms, v_now) e;
      if v_phase = 'open' then
        v_refusal := 'circuit_open';
      end if;
    end if;
    if v_refusal is not null then
      if v_seq is not null then
        -- It left the queue without a slot: the next waiter may go.
        perform gateway_wake(p_instance, v_now_ts);
      end if;
      outcome := v_refusal;
      bucket := v_bucket;
      retry_after_ms := ceil(v_retry);
      return next;
      return;
    end if;

    if p_max_parallel is not null then
      update gateway_slots s
         set holder = gen_random_uuid(), expires_at = v_now_ts + make_interval(secs => p_lease_ms / 1000.0)
       where s.instance_id = p_instance
         and s.n = (select min(f.n) from gateway_slots f
                     where f.instance_id = p_instance and (f.expires_at is null or f.expires_at <= v_now_ts))
      returning s.n || ':' || s.holder into v_slot;
      if v_slot is null then
        insert into gateway_slots (instance_id, n, holder, expires_at)
          select p_instance, coalesce(max(f.n), 0) + 1, gen_random_uuid(),
                 v_now_ts + make_interval(secs => p_lease_ms / 1000.0)
            from gateway_slots f where f.instance_id = p_instance
        returning n || ':' || holder into v_slot;
      end if;
    end if;
    update gateway_rate_buckets g set tat = greatest(g.tat, v_now) + 1000 / b.rps
      from jsonb_to_recordset(p_buckets) as b(key text, rps numeric, burst integer)
     where g.key = b.key;
    outcome := 'admitted';
    slot_id := v_slot;
    breaker_failures := v_failures;
    trial := v_trial;
    return next;
  end $$`;

// The breaker: closed (opened_until null), open (until opened_until), then half-open with a
// single trial claimed by whichever caller gets there first, across every replica.
const breaker = [
  sql`create function gateway_breaker_enter(p_instance text, p_trial_ms bigint, p_now_ms numeric)
  returns table (phase text, failures integer, retry_after_ms bigint, trial boolean)
  language plpgsql as $$
  declare
    v_now_ts timestamptz := gateway_ts(gateway_now_ms(p_now_ms));
    b gateway_breakers%rowtype;
  begin
    select * into b from gateway_breakers x where x.instance_id = p_instance;
    if not found or b.opened_until is null then
      return query select 'closed', coalesce(b.failures, 0), null::bigint, false;
      return;
    end if;
    if b.opened_until <= v_now_ts then
      -- Re-evaluated under the row lock: of concurrent callers, exactly one claims the trial.
      update gateway_breakers x set trial_until = v_now_ts + make_interval(secs => p_trial_ms / 1000.0)
       where x.instance_id = p_instance and x.opened_until <= v_now_ts
         and (x.trial_until is null or x.trial_until <= v_now_ts)
      returning * into b;
      if found then
        return query select 'half-open', b.failures, null::bigint, true;
        return;
      end if;
      select * into b from gateway_breakers x where x.instance_id = p_instance;
      if not found or b.opened_until is null then
        return query select 'closed', coalesce(b.failures, 0), null::bigint, false;
        return;
      end if;
    end if;
    return query select 'open', b.failures,
      ceil(extract(epoch from greatest(b.opened_until, b.trial_until) - v_now_ts) * 1000)::bigint,
      false;
  end $$`,
  sql`create function gateway_breaker_success(p_instance text) returns void
  language plpgsql as $$
  declare
    v_was_open boolean;
  begin
    -- Closed at zero failures (the common case) writes nothing.
    update gateway_breakers x set failures = 0, opened_until = null, trial_until = null
      from (select y.instance_id, y.opened_until is not null as was_open
              from gateway_breakers y
             where y.instance_id = p_instance and (y.failures > 0 or y.opened_until is not null)
             for update) old
     where x.instance_id = old.instance_id
    returning old.was_open into v_was_open;
    if v_was_open then
      perform pg_notify('connector_breaker_changed', p_instance);
    end if;
  end $$`,
  sql`create function gateway_breaker_failure(p_instance text, p_threshold integer,
                                          p_cooldown_ms bigint, p_now_ms numeric)
  returns boolean
  language plpgsql as $$
  declare
    v_now_ts timestamptz := gateway_ts(gateway_now_ms(p_now_ms));
    b gateway_breakers%rowtype;
    v_open boolean;
  begin
    insert into gateway_breakers (instance_id) values (p_instance) on conflict do nothing;
    select * into b from gateway_breakers x where x.instance_id = p_instance for update;
    v_open := case
      -- Already open: a late failure of a call that started before it opened.
      when b.opened_until > v_now_ts then false
      -- Half-open: the trial failed, open again for a whole cooldown.
      when b.opened_until is not null then true
      else b.failures + 1 >= p_threshold
    end;
    update gateway_breakers x
       set failures = b.failures + 1,
           opened_until = case when v_open
                               then v_now_ts + make_interval(secs => p_cooldown_ms / 1000.0)
                               else b.opened_until end,
           trial_until = case when v_open then null else b.trial_until end
     where x.instance_id = p_instance;
    if v_open then
      perform pg_notify('connector_breaker_changed', p_instance);
    end if;
    return v_open;
  end $$`,
];

export const m003_gateway_limits: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    for (const statement of [...tables, ...helpers, admit, ...breaker]) await statement.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    const functions = [
      "gateway_breaker_failure(text, integer, bigint, numeric)",
      "gateway_breaker_success(text)",
      "gateway_breaker_enter(text, bigint, numeric)",
      "gateway_admit(text, jsonb, integer, boolean, integer, bigint, bigint, uuid, bigint, bigint, numeric)",
      "gateway_free(text, integer, uuid, uuid, numeric)",
      "gateway_wake(text, timestamptz)",
      "gateway_now_ms(numeric)",
      "gateway_ts(numeric)",
    ];
    for (const f of functions) await sql`drop function ${sql.raw(f)}`.execute(db);
    for (const t of ["gateway_breakers", "gateway_waiters", "gateway_slots", "gateway_rate_buckets"]) {
      await db.schema.dropTable(t).execute();
    }
  },
};
