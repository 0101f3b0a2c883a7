using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Policies;

namespace Kintsugi.Supervision.Tests;

public sealed class BudgetTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static RestartBudget Budget() => new(new BudgetSpec { Restarts = 3, Within = TimeSpan.FromMinutes(10) });

    private static DateTimeOffset At(double minutes) => T0.AddMinutes(minutes);

    [Fact]
    public void Exhausted_budget_refuses_until_the_oldest_restart_leaves_the_window()
    {
        var budget = Budget();
        Assert.True(budget.TryConsume(At(0)));
        Assert.True(budget.TryConsume(At(1)));
        Assert.True(budget.TryConsume(At(2)));
        Assert.False(budget.TryConsume(At(3)));
        Assert.False(budget.TryConsume(At(9.99)));
        Assert.Equal(3, budget.UsedAt(At(9.99)));

        Assert.True(budget.TryConsume(At(10))); // the restart at 0 is exactly Within ago: outside
        Assert.False(budget.TryConsume(At(10.5)));
        Assert.True(budget.TryConsume(At(11)));
        Assert.Equal(3, budget.UsedAt(At(11)));
        Assert.Equal(0, budget.UsedAt(At(30)));
    }

    [Fact]
    public void Refused_attempts_are_not_recorded()
    {
        var budget = Budget();
        for (int i = 0; i < 3; i++)
        {
            Assert.True(budget.TryConsume(At(i)));
        }
        for (int i = 0; i < 50; i++)
        {
            Assert.False(budget.TryConsume(At(5)));
        }
        Assert.True(budget.TryConsume(At(10)));
    }

    [Fact]
    public void Seeded_restarts_count_once()
    {
        var budget = Budget();
        budget.Seed([At(-20), At(0), At(1)]);
        Assert.Equal(2, budget.UsedAt(At(2)));
        Assert.True(budget.TryConsume(At(2)));
        Assert.False(budget.TryConsume(At(3)));

        // Read back again from the journal, with the live restart at millisecond precision.
        budget.Seed([At(0), At(1), At(2).AddTicks(3)]);
        Assert.Equal(3, budget.UsedAt(At(3)));
        Assert.True(budget.TryConsume(At(10)));
    }

    [Fact]
    public void A_zero_budget_never_allows_a_restart()
    {
        var budget = new RestartBudget(new BudgetSpec { Restarts = 0, Within = TimeSpan.FromHours(1) });
        Assert.False(budget.TryConsume(T0));
    }

    [Fact]
    public void Invalid_settings_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new RestartBudget(new BudgetSpec { Restarts = -1 }));
        Assert.Throws<ArgumentException>(() => new RestartBudget(new BudgetSpec { Within = TimeSpan.Zero }));
    }
}
