import marimo

__generated_with = "0.25.2"
app = marimo.App()

with app.setup:
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    import torch.nn as nn


    def plot_attention(weights: torch.Tensor, tokens: list[str], title: str) -> plt.Figure:
        """把注意力權重畫成熱圖：每個查詢詞元一列，每個鍵詞元一欄。

        參數：
            weights: 單一注意力頭為 (T, T)；(heads, T, T) 則把各個頭並排畫出。
            tokens: T 個詞元，當作座標軸的標籤。
            title: 熱圖上方的標題；有多個頭時會在後面加上頭的編號。
        """
        weights = weights.detach().float().cpu()
        if weights.dim() == 2:
            weights = weights.unsqueeze(0)  # (1, T, T)
        num_heads = weights.shape[0]
        # 所有頭共用同一個色階，並延展到最大的權重，細微的差異才看得出來
        vmax = weights.max().item()
        fig, axes = plt.subplots(
            1, num_heads, figsize=(2.6 * num_heads, 2.6), squeeze=False, layout="constrained"
        )
        for head, ax in enumerate(axes[0]):
            ax.imshow(weights[head], cmap="Blues", vmin=0.0, vmax=vmax)
            for (row, col), value in np.ndenumerate(weights[head].numpy()):
                color = "white" if value > 0.6 * vmax else "black"
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=5, color=color)
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
            ax.set_xlabel("key", fontsize=7)
            ax.set_ylabel("query", fontsize=7)
            ax.set_title(title if num_heads == 1 else f"{title}, head {head + 1}", fontsize=8)
        # 筆記本會顯示傳回的圖；在這裡先關閉，才不會多出第二份
        plt.close(fig)
        return fig


    def capture_attention_weights(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """執行 model(x)，依呼叫順序傳回其中每個 nn.Dropout 的輸出。

        注意力模組會對注意力權重套用丟棄法，所以每個輸出就是拿來混合值向量的那個矩陣：
        CausalAttention 為 (b, T, T)，MultiHeadAttention 為 (b, heads, T, T)。
        """
        captured = []

        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            captured.append(output.detach())

        handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Dropout)]
        try:
            with torch.inference_mode():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        if not captured:
            raise RuntimeError(
                f"{type(model).__name__} never called an nn.Dropout layer: "
                "apply self.dropout to the attention weights in forward()"
            )
        return captured


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 第 3 章 · 注意力機制

    這份作業對應 Sebastian Raschka 的《Build a Large Language Model (From Scratch)》一書的第 3 章。我們從注意力最樸素的想法出發（依照詞元彼此的相似程度，把它們的向量混合起來），最後完成每個 GPT 區塊裡都有的多頭因果注意力模組。

    **這份筆記本怎麼用**

    - 每個部分先有一段說明，接著是一個放著*骨架程式*（stub）的儲存格：只有函式簽章和說明字串，該寫程式碼的地方是 `raise NotImplementedError()`。請把這一行換成你的實作。名稱與簽章請保持原樣：評分程式是依名稱找到它們的。
    - 骨架之後的儲存格會拿範例句子執行你的程式碼。隨機種子設定的位置和書中相同，所以實作正確時，印出來的數字會和書上一致。
    - 每個部分的最後都有一個檢查儲存格 `check(名稱)`，它會對你的儲存格所定義的物件跑幾項快速測試，並列出檢查清單。它只檢查每個任務的一部分配分，其餘的在正式評分時才檢查；檢查清單會寫出這裡檢查了幾分、之後還有幾分。

    | 部分 | 章節 | 你要寫的 | 配分 |
    |---|---|---|---|
    | 1 | 3.3 | `softmax_naive`、`simple_self_attention` | 2 + 6 |
    | 2 | 3.4 | `SelfAttention_v1`、`SelfAttention_v2`、`load_v2_weights_into_v1`（練習 3.1） | 8 + 8 + 5 |
    | 3 | 3.5 | `CausalAttention` | 24 |
    | 4 | 3.6 | `MultiHeadAttentionWrapper`、`exercise_3_2`、`MultiHeadAttention`、`exercise_3_3` | 14 + 4 + 24 + 5 |

    總分：100 分。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    # Cell tags: marimo-only
    mo.md(r"""
    **在 marimo 裡。** 只要某個儲存格所依賴的儲存格改變了，marimo 就會自動重新執行它：你修改骨架並執行之後（Ctrl+Enter，Mac 上是 Cmd+Enter），它的示範和檢查儲存格都會自己更新，所以檢查結果永遠對應你眼前的程式碼。需要用到你還沒完成之任務的示範，在你完成之前會顯示錯誤。如果筆記本開啟時沒有執行任何儲存格（有些 marimo 設定在啟動時什麼都不執行，或只把改過的儲存格標成過期而不執行），請按一次右下角的 `Run` 按鈕。用 Ctrl+S（Cmd+S）存檔：評分程式讀的是存檔後的檔案。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 準備工作

    請先執行下一個儲存格。它除了匯入 PyTorch，還定義了兩個畫圖用的輔助函式：

    - `plot_attention(weights, tokens, title)` 把注意力權重畫成熱圖。第 *i* 列顯示查詢詞元 *i* 如何把注意力分配給各欄的詞元；顏色越深，權重越大。
    - `capture_attention_weights(model, x)` 執行一個模組，並傳回它算出的注意力權重。它的做法是監聽模組裡的 `nn.Dropout` 層，因為丟棄法正是直接套用在注意力權重上，所以適用於第 3、4 部分的模組。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 第 1 部分 · 沒有可訓練權重的注意力（3.3 節）

    整份作業都用同一個範例句子 `Your journey starts with one step`，它被切成六個詞元（token）。每個詞元都已經嵌入成三維向量 $x^{(1)}, \dots, x^{(6)}$。真正的 GPT-2 用的是 768 維；只用三維，每個數字都還看得懂。

    自注意力把每個輸入向量 $x^{(i)}$ 轉成一個**上下文向量** $z^{(i)}$：它是*所有*輸入向量的混合，其中對詞元 $i$ 最重要的詞元占的比重最大。在沒有可訓練權重的情況下，對一個查詢詞元 $x^{(i)}$ 要做三個步驟：

    1. **分數。** 用點積拿查詢和每個詞元比較，$\omega_{ij} = x^{(i)} \cdot x^{(j)}$。兩個向量的方向越接近，點積就越大。
    2. **權重。** 用 softmax 函數把這個查詢的分數變成總和為 1 的正數，$\alpha_{ij} = e^{\omega_{ij}} / \sum_k e^{\omega_{ik}}$。
    3. **上下文向量。** 用這些權重把輸入混合起來，$z^{(i)} = \sum_j \alpha_{ij} \, x^{(j)}$。
    """)
    return


@app.cell
def _():
    tokens = ["Your", "journey", "starts", "with", "one", "step"]
    inputs = torch.tensor(
        [
            [0.43, 0.15, 0.89],  # Your     (x^1)
            [0.55, 0.87, 0.66],  # journey  (x^2)
            [0.57, 0.85, 0.64],  # starts   (x^3)
            [0.22, 0.58, 0.33],  # with     (x^4)
            [0.77, 0.25, 0.10],  # one      (x^5)
            [0.05, 0.80, 0.55],  # step     (x^6)
        ]
    )
    print(inputs.shape)
    return inputs, tokens


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 1.1 · `softmax_naive`（2 分）

    照字面寫出 softmax 公式：對每個元素取指數，再除以沿著第 0 維的指數總和。對一個分數向量來說，結果是總和為 1 的正數權重，而且分數越大，分到的比重會不成比例地更大。

    這個函式之所以叫*天真版*（naive），是因為分數一旦超過大約 88（float32 的情況），`torch.exp` 就會溢位成 `inf`，而 `inf / inf` 的結果是 `nan`。`torch.softmax` 會先減去最大的分數來避開這個問題；由於因子 $e^{-\max}$ 會上下相消，結果並不會改變。完成這個任務之後，我們就改用 `torch.softmax`。

    骨架之後的儲存格會對單一查詢（第二個詞元 *journey*）走完三個步驟，並印出它的分數、權重與上下文向量。
    """)
    return


@app.function
def softmax_naive(x: torch.Tensor) -> torch.Tensor:
    """直接照公式寫出的 softmax，沿著第 0 維正規化。

    參數：
        x: 形狀為 (T,) 的分數。
    回傳：
        與 x 形狀相同的正數權重，沿第 0 維加總為 1。
    """
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _(inputs):
    query_2 = inputs[1]  # 由 "journey" 提出查詢
    # 步驟 1：每個詞元算一個點積
    attn_scores_2 = torch.stack([torch.dot(x_j, query_2) for x_j in inputs])  # (6,)
    return (attn_scores_2,)


@app.cell
def _(attn_scores_2, inputs):
    # 步驟 2：用你寫的 softmax 正規化
    attn_weights_2 = softmax_naive(attn_scores_2)  # (6,)
    # 步驟 3：依權重混合所有輸入
    context_vec_2 = sum(w * x_j for w, x_j in zip(attn_weights_2, inputs))  # (3,)
    print("scores: ", attn_scores_2)
    print("weights:", attn_weights_2, "sum:", round(attn_weights_2.sum().item(), 4))
    print("context:", context_vec_2)
    return (context_vec_2,)


@app.cell
def _():
    from autograder import check
    check(softmax_naive)
    return (check,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 1.2 · `simple_self_attention`（6 分）

    每個詞元都可以輪流當查詢。把所有查詢的分數收集起來，就得到一個 $T \times T$ 的矩陣，它的第 $i$ 列是 $\omega_{i1}, \dots, \omega_{iT}$。下一個儲存格用兩層巢狀迴圈建立這個矩陣，再用你的 `softmax_naive` 把每一列正規化，然後畫出結果：熱圖的每一列就是一個查詢的注意力。

    迴圈既慢，又把結構藏了起來。你的任務是在 `simple_self_attention(inputs)` 裡不用 Python 迴圈，一次算出全部六個上下文向量：

    - 所有兩兩之間的點積，可以由輸入和它的轉置做一次矩陣乘法得到；
    - 用 `torch.softmax(..., dim=-1)` 把分數的每一*列*正規化；
    - 再做一次矩陣乘法把輸入混合起來，$(T, T) \times (T, d) \to (T, d)$。

    你的結果的第 2 列，必須等於任務 1.1 裡 *journey* 的上下文向量。
    """)
    return


@app.cell
def _(inputs, tokens):
    # 第 i 列是查詢 i 對每個詞元的分數，一次算一個點積
    attn_scores_loop = torch.tensor([[torch.dot(x_i, x_j).item() for x_j in inputs] for x_i in inputs])  # (6, 6)
    attn_weights_loop = torch.stack([softmax_naive(row) for row in attn_scores_loop])  # (6, 6)
    plot_attention(attn_weights_loop, tokens, "Simple self-attention")
    return


@app.function
def simple_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """沒有可訓練權重的自注意力：每個詞元同時是查詢、鍵和值。

    參數：
        inputs: 形狀為 (T, d) 的詞元嵌入向量。
    回傳：
        形狀為 (T, d) 的上下文向量；第 i 列是查詢 i 依注意力權重混合所有輸入的結果。
    """
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _(inputs):
    all_context_vecs = simple_self_attention(inputs)  # (6, 3)
    print(all_context_vecs)
    return (all_context_vecs,)


@app.cell
def _(all_context_vecs, context_vec_2):
    # 第 2 列必須和 "journey" 逐步算出的結果一致
    print("row 2 matches task 1.1:", torch.allclose(all_context_vecs[1], context_vec_2))
    return


@app.cell
def _(check):
    check(simple_self_attention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 第 2 部分 · 具有可訓練權重的自注意力（3.4 節）

    在第 1 部分裡，每個向量同時扮演三個角色：提出問題（查詢）、被拿來比對（鍵），以及被混合的內容（值）。這個計算裡沒有任何東西可以訓練。真正的注意力機制讓每個角色各有一個可訓練的矩陣，把每個輸入分別投影三次：

    $$q^{(i)} = x^{(i)} W_q, \qquad k^{(i)} = x^{(i)} W_k, \qquad v^{(i)} = x^{(i)} W_v$$

    查詢 $i$ 對詞元 $j$ 的分數變成 $q^{(i)} \cdot k^{(j)}$，而上下文向量混合的是*值向量*。寫成矩陣形式，把輸入當作 $X$ 的各列：

    $$Q = X W_q, \quad K = X W_k, \quad V = X W_v, \qquad Z = \operatorname{softmax}\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V$$

    除以 $\sqrt{d_k}$（$d_k$ 是鍵向量的長度，也就是 `keys.shape[-1]`），正是這種注意力被稱為*縮放*點積注意力的原因。向量越長，點積的絕對值往往越大；softmax 會把很大的分數變成近乎獨熱（one-hot）的分布，它的梯度幾乎為零，訓練就會停滯。下一個儲存格示範這個效果。
    """)
    return


@app.cell
def _():
    demo_scores = torch.tensor([0.4, -0.2, 0.3, -0.1, 0.5])
    print(torch.softmax(demo_scores, dim=-1))
    # 排序相同、大小放大八倍：幾乎所有權重都落在同一個元素上
    print(torch.softmax(demo_scores * 8, dim=-1))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 2.1 · `SelfAttention_v1`（8 分）

    把上面的公式寫成一個 `nn.Module`。三個矩陣以 `nn.Parameter` 屬性 `W_query`、`W_key`、`W_value` 儲存，形狀都是 `(d_in, d_out)`，並用 `torch.rand` 填入初始值。請完全依照這個順序建立：在 `torch.manual_seed(123)` 之後，建立的順序決定每個矩陣拿到哪些亂數，也就決定了你的輸出能不能和書上一致。

    `forward(x)` 接收一個形狀為 `(T, d_in)` 的序列，傳回它的上下文向量，形狀為 `(T, d_out)`。請用 `torch.softmax(..., dim=-1)` 把縮放後分數的每一列正規化。
    """)
    return


@app.class_definition
class SelfAttention_v1(nn.Module):
    """查詢、鍵、值矩陣直接以可訓練參數儲存的自注意力。

    屬性：
        W_query, W_key, W_value: 形狀為 (d_in, d_out) 的 nn.Parameter，依此順序用 torch.rand 建立。
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """把形狀為 (T, d_in) 的序列 x 對應到它的上下文向量，形狀為 (T, d_out)。"""
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _(inputs):
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(d_in=3, d_out=2)
    print(sa_v1(inputs))
    return


@app.cell
def _(check):
    check(SelfAttention_v1)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 2.2 · `SelfAttention_v2`（8 分）

    `nn.Linear(d_in, d_out, bias=False)` 算的是和 `x @ W` 一樣的乘積，只是它把權重存成 `(d_out, d_in)`，再乘上轉置。用它取代直接宣告的參數有兩個好處：更好的初始化（依輸入大小縮放，讓活化值維持在合理範圍），以及可選用的偏差項，在這裡由 `qkv_bias=True` 開啟。

    請寫出 `SelfAttention_v2`：三個名為 `W_query`、`W_key`、`W_value` 的 `nn.Linear` 層，依此順序以 `bias=qkv_bias` 建立；其餘計算和第 1 版相同。它的輸出和第 1 版不同，因為權重的初始亂數不一樣。
    """)
    return


@app.class_definition
class SelfAttention_v2(nn.Module):
    """查詢、鍵、值投影都使用 nn.Linear 層的自注意力。

    屬性：
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias)，依此順序建立。
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """把形狀為 (T, d_in) 的序列 x 對應到它的上下文向量，形狀為 (T, d_out)。"""
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _():
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(d_in=3, d_out=2)
    return (sa_v2,)


@app.cell
def _(inputs, sa_v2):
    print(sa_v2(inputs))
    return


@app.cell
def _(check):
    check(SelfAttention_v2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 練習 3.1 · `load_v2_weights_into_v1`（5 分）

    這兩個類別計算的是同一個函數，只是儲存權重的方式不同。請證明這一點：寫出 `load_v2_weights_into_v1(sa_v1, sa_v2)`，用 `sa_v2` 的三個矩陣覆寫 `sa_v1` 的三個矩陣，讓兩個模組對任何輸入都傳回相同的輸出。

    - `sa_v2.W_query.weight` 的形狀是 `(d_out, d_in)`，而 `sa_v1.W_query` 的形狀是 `(d_in, d_out)`。
    - 請在 `torch.no_grad()` 區塊裡就地修改參數，例如使用 `Tensor.copy_`。自動微分不允許就地修改需要梯度的葉節點張量，而且這次複製本來就不是需要微分的計算。
    - `sa_v2` 必須以 `qkv_bias=False` 建立，因為第 1 版沒有偏差項。
    - 這個函式不傳回任何值；它直接修改 `sa_v1`。
    """)
    return


@app.function
def load_v2_weights_into_v1(sa_v1: SelfAttention_v1, sa_v2: SelfAttention_v2) -> None:
    """就地覆寫 sa_v1 的權重，讓任何 x 都滿足 sa_v1(x) 等於 sa_v2(x)。

    nn.Linear 把權重存成 (d_out, d_in)；SelfAttention_v1 存的是 (d_in, d_out)。
    """
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _(inputs, sa_v2):
    torch.manual_seed(123)
    sa_v1_loaded = SelfAttention_v1(d_in=3, d_out=2)
    load_v2_weights_into_v1(sa_v1_loaded, sa_v2)
    print(sa_v1_loaded(inputs))
    print("same output as sa_v2:", torch.allclose(sa_v1_loaded(inputs), sa_v2(inputs)))
    return


@app.cell
def _(check):
    check(load_v2_weights_into_v1)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 第 3 部分 · 因果注意力（3.5 節）

    GPT 模型是由左到右、一次一個詞元地寫出文字。在它學習預測位置 $i$ 之後的詞元時，不能看到 $i$ 之後的詞元，否則它只要把答案抄過來就好。因此，**因果**（或稱遮罩）注意力只讓每個查詢關注它自己和更早的詞元：在權重矩陣中，對角線以上的每個元素都必須是零。

    要得到這些零，乾淨的做法是在 softmax *之前*就遮住分數。把對角線以上的分數全部設成 $-\infty$：因為 $e^{-\infty} = 0$，這些位置的權重剛好是零，而每一列剩下的權重加起來仍然是 1。（若在 softmax 之後才把權重歸零，就得再正規化一次。）要遮住的位置，就是 `torch.triu(torch.ones(T, T), diagonal=1)` 裡為 1 的位置，也就是嚴格位於對角線上方的元素。

    GPT 模型在訓練時還會對注意力權重套用**丟棄法**（dropout）：每個權重以機率 $p$ 被設為零，留下來的則乘上 $1/(1-p)$，讓總和的期望值維持不變。這樣可以避免模型過度依賴少數幾條特定的連結。在評估模式（`model.eval()`）下，丟棄法不起作用。

    下一個儲存格用小例子示範這兩個要素。
    """)
    return


@app.cell
def _():
    # 1 代表未來的位置，對該列的查詢而言是隱藏的
    print(torch.triu(torch.ones(4, 4), diagonal=1))
    torch.manual_seed(123)
    # 大約一半的元素變成 0；其餘的從 1 放大成 1 / (1 - 0.5) = 2
    print(nn.Dropout(0.5)(torch.ones(4, 4)))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 3 · `CausalAttention`（24 分）

    從這裡開始，模組接收的是一個**批次**的序列，形狀為 `(b, T, d_in)`；範例批次是把我們的句子堆疊兩次。矩陣乘法會對批次中的每一筆分別計算，但轉置鍵向量時，現在只能交換最後兩個維度，也就是用 `keys.transpose(1, 2)`，而不是 `.T`。

    請建立 `CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=False)`，它有這些屬性：

    - `W_query`、`W_key`、`W_value`：以 `bias=qkv_bias` 建立的 `nn.Linear(d_in, d_out)` 層，依此順序建立；
    - `dropout`：丟棄機率為 `dropout` 的 `nn.Dropout`，在 softmax 之後套用到注意力權重上；
    - `mask`：上面說明過的 `(context_length, context_length)` 上三角矩陣，用 `self.register_buffer("mask", ...)` 註冊。緩衝區（buffer）屬於模組狀態的一部分：它會跟著 `.to(device)` 移動，也會被 `state_dict()` 儲存，但最佳化器永遠不會改動它。

    在 `forward` 裡，批次的長度可能比 `context_length` 短，所以只取遮罩左上角的 `T × T` 區塊。用布林遮罩和 `-torch.inf` 呼叫 `masked_fill_`，就能就地完成遮罩。縮放與正規化的方式和之前相同。
    """)
    return


@app.cell
def _(inputs):
    batch = torch.stack((inputs, inputs), dim=0)  # (2, 6, 3)：同一個句子放兩次
    return (batch,)


@app.class_definition
class CausalAttention(nn.Module):
    """單頭自注意力，每個詞元只關注它自己和更早的詞元。

    屬性：
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias)，依此順序建立。
        dropout: nn.Dropout(dropout)，套用在注意力權重上。
        mask: 形狀為 (context_length, context_length) 的緩衝區，對角線以上（未來的位置）為 1。
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """把形狀為 (b, T, d_in) 的批次 x（T <= context_length）對應到上下文向量 (b, T, d_out)。"""
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    ca = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.0)
    context_vecs = ca(batch)
    print(context_vecs)
    print(context_vecs.shape)
    # 批次中的第一筆：對角線以上全是空白
    plot_attention(capture_attention_weights(ca, batch)[0][0], tokens, "Causal attention")
    return


@app.cell
def _(batch, tokens):
    # 一個處於訓練模式、丟棄率 0.5 的新模組：部分權重消失，留下來的加倍
    torch.manual_seed(123)
    ca_dropout = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.5)
    plot_attention(capture_attention_weights(ca_dropout, batch)[0][0], tokens, "Causal, dropout 0.5")
    return


@app.cell
def _(check):
    check(CausalAttention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 第 4 部分 · 多頭注意力（3.6 節）

    單一的注意力模組只能學到一種「哪些詞元彼此相關」的看法。**多頭注意力**在同一個輸入上並排執行好幾個因果注意力模組，也就是所謂的*頭*，每個頭都有自己的投影矩陣，最後把它們的輸出串接起來。這樣各個頭就能各有專長：例如一個頭追蹤前一個字，另一個頭追蹤句子的主詞。最小的 GPT-2 每一層有 12 個頭。

    你會把它寫兩次：第一次是包住你的 `CausalAttention` 的簡單包裝類別，第二次是只用少數幾個張量運算就算出所有頭的單一模組。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 4.1 · `MultiHeadAttentionWrapper`（14 分）

    把 `num_heads` 個彼此獨立的 `CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)` 模組放在型別為 `nn.ModuleList` 的屬性 `heads` 裡；如果用一般的 Python 串列，PyTorch 就看不到它們的參數。`forward` 讓每個頭都處理 `x`，再沿著最後一個維度把結果串接起來，所以每個頭貢獻 `d_out` 個特徵，輸出的形狀是 `(b, T, num_heads * d_out)`。

    示範之後的熱圖為每個頭各畫一個權重矩陣：因果的形狀相同，權重則不同。
    """)
    return


@app.class_definition
class MultiHeadAttentionWrapper(nn.Module):
    """num_heads 個彼此獨立的 CausalAttention 頭，輸出串接在一起。

    屬性：
        heads: 由 num_heads 個 CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) 組成的 nn.ModuleList。
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """把形狀為 (b, T, d_in) 的批次 x 對應到 (b, T, num_heads * d_out)。"""
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    mha_wrapper = MultiHeadAttentionWrapper(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    wrapper_vecs = mha_wrapper(batch)
    print(wrapper_vecs)
    print(wrapper_vecs.shape)
    # 每個頭一個 (b, T, T) 矩陣；各畫出批次中的第一筆
    wrapper_weights = torch.stack([w[0] for w in capture_attention_weights(mha_wrapper, batch)])
    plot_attention(wrapper_weights, tokens, "Wrapper")
    return


@app.cell
def _(check):
    check(MultiHeadAttentionWrapper)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 練習 3.2 · `exercise_3_2`（4 分）

    當 `d_out=2` 且有兩個頭時，包裝類別會為每個詞元傳回四個特徵。請寫出 `exercise_3_2()`，讓它傳回一個兩頭的包裝類別（`d_in=3`、`context_length=6`、`dropout=0.0`、`num_heads=2`），而且它在範例批次上的輸出形狀是 `(2, 6, 2)`。哪一個引數需要改？
    """)
    return


@app.function
def exercise_3_2() -> MultiHeadAttentionWrapper:
    """傳回一個兩頭的 MultiHeadAttentionWrapper，它在範例批次上的輸出為 (2, 6, 2)。

    保持 d_in=3、context_length=6、dropout=0.0 與 num_heads=2。
    """
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _(batch):
    torch.manual_seed(123)
    mha_small = exercise_3_2()
    small_vecs = mha_small(batch)
    print(small_vecs)
    print(small_vecs.shape)
    return


@app.cell
def _(check):
    check(exercise_3_2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 任務 4.2 · `MultiHeadAttention`（24 分）

    包裝類別是一個接一個地計算各個頭，每個頭各做自己的小型矩陣乘法。`MultiHeadAttention` 則一次算完全部：每個角色只用一個 `nn.Linear(d_in, d_out)`，就產生*所有*頭的查詢（鍵、值），每個頭再各自取用其中 `head_dim = d_out // num_heads` 欄。請注意兩者的差別：這裡的 `d_out` 是所有頭共用的總輸出大小；而在包裝類別裡，每個頭都有自己的 `d_out` 個特徵。

    拆分的方法是先改變形狀，再做一次轉置，把頭的維度移到詞元的前面：

    ```
    (b, T, d_out) -> view -> (b, T, num_heads, head_dim) -> transpose(1, 2) -> (b, num_heads, T, head_dim)
    ```

    接著 `queries @ keys.transpose(2, 3)` 一次就得到全部的分數，形狀為 `(b, num_heads, T, T)`；遮罩、縮放、softmax 與丟棄法的做法都和 `CausalAttention` 完全相同。乘上值向量之後，再把拆分還原：轉置回 `(b, T, num_heads, head_dim)`，然後用 `.contiguous().view(b, T, d_out)` 合併最後兩個維度。之所以需要 `contiguous()`，是因為轉置只會重新排列步幅（stride），而 `view` 要求記憶體依序排列。最後由線性層 `out_proj`，也就是 `nn.Linear(d_out, d_out)`，把各個頭的輸出混合起來。

    屬性：依序建立的 `W_query`、`W_key`、`W_value`（使用 `bias=qkv_bias`）、`out_proj`、`dropout` 與 `mask`，另外還有 `num_heads` 和 `head_dim`。當 `d_out` 無法被 `num_heads` 整除時，建構子必須以 `assert`（或 `ValueError`）失敗，並在訊息中說明原因。
    """)
    return


@app.class_definition
class MultiHeadAttention(nn.Module):
    """把 d_out 拆成多個頭、一次算完所有頭的因果多頭注意力。

    屬性：
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias)。
        out_proj: nn.Linear(d_out, d_out)，負責混合各個頭。
        dropout: nn.Dropout(dropout)，套用在注意力權重上。
        mask: 形狀為 (context_length, context_length) 的緩衝區，對角線以上為 1。
        num_heads, head_dim: 頭的數量，以及 d_out // num_heads。
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """把形狀為 (b, T, d_in) 的批次 x（T <= context_length）對應到上下文向量 (b, T, d_out)。"""
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    mha_vecs = mha(batch)
    print(mha_vecs)
    print(mha_vecs.shape)
    # 模組中唯一的丟棄層看到的是 (b, heads, T, T)；畫出第一筆的兩個頭
    plot_attention(capture_attention_weights(mha, batch)[0][0], tokens, "Multi-head")
    return


@app.cell
def _():
    # 三個輸出特徵無法平均分給兩個頭
    try:
        MultiHeadAttention(d_in=3, d_out=3, context_length=6, dropout=0.0, num_heads=2)
        print("no error raised: the constructor should reject d_out=3 with num_heads=2")
    except (AssertionError, ValueError) as err:
        print("rejected as expected:", err)
    return


@app.cell
def _(check):
    check(MultiHeadAttention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### 練習 3.3 · `exercise_3_3`（5 分）

    最小的 GPT-2 每一層有 12 個注意力頭，嵌入向量為 768 維，上下文長度為 1024 個詞元。請寫出 `exercise_3_3()`，傳回這個大小的 `MultiHeadAttention`：輸入和輸出大小相同、不使用丟棄法，並採用預設的 `qkv_bias=False`。驗算一下：它有四個 768 × 768 的權重矩陣，再加上 `out_proj` 的 768 個偏差值，總共 2,360,064 個參數。
    """)
    return


@app.function
def exercise_3_3() -> MultiHeadAttention:
    """傳回具有最小 GPT-2 模型尺寸的 MultiHeadAttention。"""
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _():
    gpt2_mha = exercise_3_3()
    num_params = sum(p.numel() for p in gpt2_mha.parameters())
    print(f"{num_params:,} parameters, head_dim = {gpt2_mha.head_dim}")
    return


@app.cell
def _(check):
    check(exercise_3_3)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 接下來

    `MultiHeadAttention` 是Transformer 區塊的核心。第 4 章會把它和層正規化、前饋網路以及捷徑連結組合起來，再把許多這樣的區塊堆疊起來，就成了一個 GPT 模型。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    # Cell tags: marimo-only
    mo.md(r"""
    ## 如何繳交（marimo）

    1. 確認沒有過期的儲存格，也沒有你意料之外的錯誤：每個 `check(...)` 儲存格都列出了檢查清單。
    2. 儲存筆記本（Ctrl+S，Mac 上是 Cmd+S）。
    3. 依課程的規定（例如在 Gradescope 上）只繳交這一個檔案：`ch03_attention.py`。如果你手上還有沒動過的 `ch03_attention.ipynb`，請不要一起交：只交你實際寫作業的那個檔案。
    """)
    return


if __name__ == "__main__":
    app.run()
