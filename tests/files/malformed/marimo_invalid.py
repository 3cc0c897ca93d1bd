import marimo

app = marimo.App()


@app.cell
def _():
    import torch
    return (torch,)


@app.cell
def _(torch):
    def softmax_naive(x)
        return torch.exp(x) / torch.exp(x).sum(dim=0)
    return (softmax_naive,)


if __name__ == "__main__":
    app.run()
